import pytest


@pytest.mark.target_coreml
def test_coremltools_bars_follow_edgeir_progress_policy(monkeypatch):
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil.passes import pass_pipeline

    from edgeir.targets.coreml.quiet import converter_progress

    monkeypatch.setenv("EDGEIR_PROGRESS", "0")
    before = pass_pipeline.tqdm, ops._tqdm
    with converter_progress():
        assert pass_pipeline.tqdm(range(2)).disable and ops._tqdm(range(2)).disable
    assert (pass_pipeline.tqdm, ops._tqdm) == before
    monkeypatch.setenv("EDGEIR_PROGRESS", "1")
    with converter_progress():
        assert (pass_pipeline.tqdm, ops._tqdm) == before
