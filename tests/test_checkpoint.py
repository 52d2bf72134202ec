import collections

import pytest
import torch
from torch import nn

from edgeir.errors import CheckpointError
from edgeir.weights.checkpoint import check_state_dict, load_into, read_checkpoint, state_dict_sha256


class Payload:
    """A pickled object that weights_only loading must refuse."""


def _model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 3, 1))


def test_state_dict_round_trip_through_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    model = _model()
    torch.save({"params": model.state_dict()}, tmp_path / "w.pth")
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    for name, convert in (("w.pth", lambda raw: dict(raw["params"])), ("w.safetensors", dict)):
        other = _model()
        load_into(other, tmp_path / name, convert)
        assert state_dict_sha256(other) == state_dict_sha256(model)


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"state_dict": _model().state_dict(), "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        read_checkpoint(tmp_path / "evil.pth")


def test_wrong_keys_are_named():
    model = _model()
    state = collections.OrderedDict(model.state_dict())
    state["2.weight"] = state.pop("1.weight")
    state["0.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as info:
        check_state_dict(model, state, "ckpt.pth")
    message = str(info.value)
    assert "missing keys: 1.weight" in message
    assert "unexpected keys: 2.weight" in message
    assert "0.bias (5,) != (4,)" in message


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a checkpoint.*a text file"):
        read_checkpoint(tmp_path / "junk.pth")
