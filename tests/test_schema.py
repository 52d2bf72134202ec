"""Each method's declared figures against what its code builds."""

import pytest

import edgeir
from edgeir.discovery import methods

DECLARED = [
    (name, variant.name, variant.declared_params)
    for name in methods().registry.names()
    for variant in methods().get(name).variants
    if variant.declared_params is not None
]


def test_every_method_declares_its_paper_parameter_count():
    for name in methods().registry.names():
        assert methods().get(name).variant("paper").declared_params, name


@pytest.mark.parametrize("method, variant, declared", DECLARED)
def test_parameter_count_matches_declaration(method, variant, declared):
    model = edgeir.build_model(method, variant=variant)
    counted = sum(p.numel() for p in model.parameters())
    assert abs(counted - declared) <= 0.001 * declared, f"{method} {variant}: {counted} vs declared {declared}"


@pytest.mark.parametrize("method", methods().registry.names())
def test_spec_names_are_consistent(method):
    spec = methods().get(method)
    assert spec.name == method == method.lower()
    assert spec.default_task in spec.tasks
    assert spec.summary and spec.paper
