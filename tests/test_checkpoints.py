"""refsnn.checkpoints: .npz and safetensors files (checked against NumPy's own
reader/writer and the safetensors reference implementation's test vectors),
PyTorch state_dicts, refusal of anything pickled, and the wrapped/unwrapped
key-layout converter."""
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest

import refsnn as rs
from refsnn import checkpoints, functional, layers, models, neurons
from refsnn.checkpoints import CheckpointError
from refsnn.containers import SeqToANNContainer, Sequential


def sample_state():
    """Every dtype a state_dict holds, including a 0-d int64 and an empty array."""
    g = np.random.default_rng(0)
    return {
        "conv.weight": g.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn.running_var": g.random(4),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "half": g.standard_normal(5).astype(np.float16),
        "mask": g.random((2, 3)) > 0.5,
        "ints": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "bytes": np.arange(6, dtype=np.uint8),
        "small": np.arange(-2, 2, dtype=np.int8),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def assert_same_state(loaded, expected):
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


class PlantsAFile:
    """Unpickling this object creates a file: proof that a loader unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


# ----------------------------------------------------------------------------
# .npz
# ----------------------------------------------------------------------------
def test_npz_round_trip_keeps_order_dtypes_and_shapes(tmp_path):
    state = sample_state()
    checkpoints.save_npz(tmp_path / "w.npz", state)
    assert_same_state(checkpoints.load_npz(tmp_path / "w.npz"), state)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as independent:
        assert_same_state({k: independent[k] for k in independent.files}, state)


def test_npz_written_by_numpy_is_read(tmp_path):
    state = sample_state()
    np.savez_compressed(tmp_path / "numpy.npz", **state)
    assert_same_state(checkpoints.load_npz(tmp_path / "numpy.npz"), state)


def test_npz_of_a_module_and_back(tmp_path):
    rs.manual_seed(0)
    net = Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4), layers.Linear(2, 5))
    checkpoints.save_npz(tmp_path / "net.npz", net, compressed=True)
    assert_same_state(checkpoints.load_npz(tmp_path / "net.npz"), net.state_dict())


def test_npz_with_an_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    payload = np.empty(1, dtype=object)
    payload[0] = PlantsAFile(marker)
    np.savez(tmp_path / "objects.npz", weight=np.ones(3), payload=payload)
    with pytest.raises(CheckpointError, match="'payload' is an object array.*never unpickles"):
        checkpoints.load_npz(tmp_path / "objects.npz")
    assert not marker.exists()


def test_saving_an_object_array_is_refused(tmp_path):
    with pytest.raises(TypeError, match="'w' has dtype object"):
        checkpoints.save_npz(tmp_path / "x.npz", {"w": np.array([{"a": 1}], dtype=object)})


@pytest.mark.parametrize("loader", [checkpoints.load_npz, checkpoints.load_safetensors])
def test_pickles_and_torch_style_archives_are_refused_without_unpickling(tmp_path, loader):
    marker = tmp_path / "unpickled"
    bare = tmp_path / "legacy.pt"
    bare.write_bytes(pickle.dumps({"w": PlantsAFile(marker)}, protocol=2))
    archive = tmp_path / "zipped.pt"
    with zipfile.ZipFile(archive, "w") as z:      # torch.save's layout: <name>/data.pkl
        z.writestr("zipped/data.pkl", pickle.dumps(PlantsAFile(marker)))
        z.writestr("zipped/data/0", b"\0" * 16)
    with pytest.raises(CheckpointError, match="is a pickle.*never unpickles"):
        loader(bare)
    with pytest.raises(CheckpointError, match="PyTorch checkpoint.*data.pkl.*"
                                              "load_torch_state_dict"):
        loader(archive)
    assert not marker.exists()


def test_files_that_are_not_npz_archives_are_refused(tmp_path):
    np.save(tmp_path / "single.npy", np.ones(3))
    (tmp_path / "text.npz").write_text("hello")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="single .npy array"):
        checkpoints.load_npz(tmp_path / "single.npy")
    with pytest.raises(CheckpointError, match="not an .npz"):
        checkpoints.load_npz(tmp_path / "text.npz")
    with pytest.raises(CheckpointError, match="not .npy arrays.*notes.txt"):
        checkpoints.load_npz(tmp_path / "other.npz")


# ----------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------
# Test vectors of the reference implementation (huggingface/safetensors,
# bindings/python/tests): the current writer pads the header to 8 bytes.
REFERENCE_F32_ZEROS = (b'@\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"F32","shape":[2,2],'
                       b'"data_offsets":[0,16]}}    ' + b"\x00" * 16)
REFERENCE_I32_UNPADDED = (b'<\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,2],'
                          b'"data_offsets":[0,16]}}' + b"\x00" * 12 + b"\x01\x00\x00\x00")
REFERENCE_WITH_METADATA = (b'f\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"framework":"pt"},'
                           b'"test1":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'
                           b'       ' + b"\x00" * 16)


def test_safetensors_bytes_equal_the_reference_writer():
    assert checkpoints.dumps_safetensors({"test": np.zeros((2, 2), np.float32)}) \
        == REFERENCE_F32_ZEROS


def test_safetensors_reference_files_are_read(tmp_path):
    loaded = checkpoints.loads_safetensors(REFERENCE_I32_UNPADDED)
    np.testing.assert_array_equal(loaded["test"], np.array([[0, 0], [0, 1]], np.int32))
    assert loaded["test"].dtype == np.int32
    (tmp_path / "meta.safetensors").write_bytes(REFERENCE_WITH_METADATA)
    assert_same_state(checkpoints.load_safetensors(tmp_path / "meta.safetensors"),
                      {"test1": np.zeros((2, 2), np.int32)})
    assert checkpoints.safetensors_metadata(tmp_path / "meta.safetensors") == {"framework": "pt"}


def test_safetensors_round_trip_and_layout(tmp_path):
    state = sample_state()
    big_endian = np.arange(3, dtype=">f4")
    checkpoints.save_safetensors(tmp_path / "w.safetensors", {**state, "be": big_endian},
                                 metadata={"format": "pt", "note": "x"})
    data = (tmp_path / "w.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    assert (8 + n) % 8 == 0 and header.pop("__metadata__") == {"format": "pt", "note": "x"}
    assert list(header) == list(state) + ["be"]
    scalar = header["bn.num_batches_tracked"]
    assert scalar["dtype"] == "I64" and scalar["shape"] == []
    assert scalar["data_offsets"] == [header["bn.running_var"]["data_offsets"][1],
                                      header["bn.running_var"]["data_offsets"][1] + 8]
    begin, end = header["conv.weight"]["data_offsets"]
    raw = np.frombuffer(data[8 + n + begin:8 + n + end], "<f4").reshape(4, 3, 3, 3)
    np.testing.assert_array_equal(raw, state["conv.weight"])
    loaded = checkpoints.load_safetensors(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(loaded.pop("be"), big_endian)
    assert_same_state(loaded, state)
    assert checkpoints.safetensors_metadata(tmp_path / "w.safetensors")["note"] == "x"


def _safetensors(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_bfloat16_is_read_as_float32():
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)   # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    blob = _safetensors({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}, bits)
    loaded = checkpoints.loads_safetensors(blob)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values)


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("blob, message", [
    (b"\x05\x00", "too short"),
    (struct.pack("<Q", 1000) + b"{}", "exceeds"),
    (struct.pack("<Q", 4) + b"[1] ", "JSON object"),
    (struct.pack("<Q", 5) + b"{bad}", "not valid UTF-8 JSON"),
    (struct.pack("<Q", 33) + b'{"a":{"dtype":"F32","shape":[0],' + b"}", "not valid"),
    (_safetensors({"a": {**F32, "dtype": "F8_E4M3"}}, b"\0" * 8), "dtype 'F8_E4M3'"),
    (_safetensors({"a": {**F32, "shape": [-2]}}, b"\0" * 8), "invalid shape"),
    (_safetensors({"a": {**F32, "data_offsets": [0, 4]}}, b"\0" * 4), "needs 8 bytes"),
    (_safetensors({"a": F32, "b": {**F32, "data_offsets": [12, 20]}}, b"\0" * 20),
     "starts at byte 12.*ends at 8"),
    (_safetensors({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),
     "starts at byte 4"),
    (_safetensors({"a": F32}, b"\0" * 12), "cover 8 bytes but the data holds 12"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "exactly dtype"),
    (_safetensors({"__metadata__": {"k": 1}}, b""), "__metadata__ must map strings"),
])
def test_malformed_safetensors_are_refused(blob, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoints.loads_safetensors(blob)


def test_duplicate_safetensors_keys_are_refused():
    text = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' \
           b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    with pytest.raises(CheckpointError, match="duplicate keys"):
        checkpoints.loads_safetensors(struct.pack("<Q", len(text)) + text + b"\0" * 8)


def test_safetensors_writer_checks_dtypes_and_metadata(tmp_path):
    with pytest.raises(TypeError, match="complex128"):
        checkpoints.dumps_safetensors({"c": np.ones(2, np.complex128)})
    with pytest.raises(TypeError, match="metadata must map strings to strings"):
        checkpoints.dumps_safetensors({"a": np.ones(2)}, metadata={"epoch": 3})


# ----------------------------------------------------------------------------
# loading into modules
# ----------------------------------------------------------------------------
def test_load_checkpoint_chooses_the_reader_by_suffix(tmp_path):
    rs.manual_seed(1)
    source = Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4))
    checkpoints.save_npz(tmp_path / "w.npz", source)
    checkpoints.save_safetensors(tmp_path / "w.safetensors", source)
    for name in ("w.npz", "w.safetensors"):
        rs.manual_seed(2)
        target = Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4))
        checkpoints.load_checkpoint(target, tmp_path / name)
        assert_same_state(target.state_dict(), source.state_dict())
    with pytest.raises(CheckpointError, match="cannot tell the format"):
        checkpoints.load_checkpoint(target, tmp_path / "w.ckpt")


def test_resnet18_weights_move_between_patterns_through_files(tmp_path):
    """A torchvision-layout checkpoint written from the step-by-step model
    loads into the layer-by-layer one, from either file format."""
    rs.manual_seed(3)
    step = models.spiking_resnet18(single_step_neuron=neurons.IFNode)
    layer = models.multi_step_spiking_resnet18(T=2, multi_step_neuron=neurons.MultiStepIFNode)
    checkpoints.save_safetensors(tmp_path / "resnet18.safetensors", step)
    checkpoints.save_npz(tmp_path / "resnet18.npz", step)
    for name in ("resnet18.safetensors", "resnet18.npz"):
        functional.reset_net(layer)
        checkpoints.load_checkpoint(layer, tmp_path / name)
        assert_same_state(layer.state_dict(), step.state_dict())


def test_weights_of_another_network_are_listed_by_key_and_shape(tmp_path):
    source = Sequential(layers.Conv2d(3, 8, 3), layers.BatchNorm2d(8), layers.Linear(8, 2))
    checkpoints.save_npz(tmp_path / "other.npz", source)
    target = Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4))
    with pytest.raises(RuntimeError) as failure:
        checkpoints.load_checkpoint(target, tmp_path / "other.npz")
    message = str(failure.value)
    assert "Unexpected key(s): 2.weight, 2.bias" in message
    assert "0.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)" in message
    assert "1.running_mean: checkpoint (8,) vs model (4,)" in message


# ----------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------
def _torch_twin_pair(torch):
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    source.train()(torch.randn(2, 3, 5, 5))          # non-default running statistics
    return source, Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4))


def test_torch_state_dict_loads_from_memory_and_from_weights_only_files(tmp_path):
    torch = pytest.importorskip("torch")
    source, target = _torch_twin_pair(torch)
    expected = {k: v.numpy() for k, v in source.state_dict().items()}
    checkpoints.load_torch_state_dict(target, source.state_dict())
    assert_same_state(target.state_dict(), expected)

    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "train.pth")
    for name in ("w.pt", "train.pth"):
        fresh = Sequential(layers.Conv2d(3, 4, 3), layers.BatchNorm2d(4))
        checkpoints.load_checkpoint(fresh, tmp_path / name)
        assert_same_state(fresh.state_dict(), expected)


def test_torch_bfloat16_tensors_load_as_float32():
    torch = pytest.importorskip("torch")
    target = layers.Linear(3, 2)
    weight = torch.tensor([[1.0, -2.5, 0.5], [3.140625, 0.0, 8.0]], dtype=torch.bfloat16)
    checkpoints.load_torch_state_dict(target, {"weight": weight, "bias": torch.zeros(2)})
    np.testing.assert_array_equal(target.weight.data, weight.float().numpy())


def test_torch_files_with_arbitrary_objects_are_refused_without_unpickling(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "unpickled"
    torch.save({"weight": torch.ones(2), "evil": PlantsAFile(marker)}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="weights_only=True.*refused"):
        checkpoints.load_torch_state_dict(layers.Linear(2, 1), tmp_path / "evil.pt")
    assert not marker.exists()
    for loader in (checkpoints.load_npz, checkpoints.load_safetensors):
        with pytest.raises(CheckpointError, match="torch.save"):
            loader(tmp_path / "evil.pt")
    assert not marker.exists()


# ----------------------------------------------------------------------------
# wrapped <-> unwrapped keys
# ----------------------------------------------------------------------------
def tutorial_nets(seed=0):
    """The propagation-pattern tutorial's nets: wrapping layers in
    SeqToANNContainer moves `0.weight`, `1.weight` to `0.0.weight`, `0.1.weight`."""
    rs.manual_seed(seed)
    step = Sequential(layers.Conv2d(3, 16, 3, padding=1, bias=False), layers.BatchNorm2d(16),
                      neurons.IFNode(), layers.Conv2d(16, 4, 3, padding=1),
                      neurons.IFNode())
    layer = Sequential(SeqToANNContainer(layers.Conv2d(3, 16, 3, padding=1, bias=False),
                                         layers.BatchNorm2d(16)),
                       neurons.MultiStepIFNode(),
                       SeqToANNContainer(layers.Conv2d(16, 4, 3, padding=1)),
                       neurons.MultiStepIFNode())
    return step, layer


def test_convert_keys_between_wrapped_and_unwrapped_layouts(tmp_path):
    step, layer = tutorial_nets()
    g = np.random.default_rng(0)
    state = layer.state_dict()
    state["0.1.running_mean"] = g.uniform(-0.3, 0.3, 16).astype(np.float32)
    state["0.1.bias"] = g.uniform(0.2, 0.6, 16).astype(np.float32)
    layer.load_state_dict(state)
    checkpoints.save_safetensors(tmp_path / "wrapped.safetensors", layer)

    unwrapped = checkpoints.convert_keys(
        checkpoints.load_safetensors(tmp_path / "wrapped.safetensors"), step)
    assert list(unwrapped) == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                               "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"]
    step.load_state_dict(unwrapped)
    step.eval()
    layer.eval()
    x = rs.tensor(np.random.default_rng(1).random((4, 2, 3, 6, 6)).astype(np.float32) * 2)
    y_layer = layer(x)
    y_step = functional.multi_step_forward(x, step)
    assert 0 < y_layer.data.mean() < 1
    np.testing.assert_array_equal(y_layer.data, y_step.data)

    rewrapped = checkpoints.convert_keys(step, layer)
    assert_same_state(rewrapped, layer.state_dict())


def test_convert_keys_adds_and_strips_a_whole_prefix():
    step, _ = tutorial_nets()
    wrapped = Sequential(step)
    keys = list(wrapped.state_dict())
    assert keys[0] == "0.0.weight"
    assert list(checkpoints.convert_keys(step, keys)) == keys
    assert list(checkpoints.convert_keys(wrapped, step)) == list(step.state_dict())


def test_convert_keys_uses_the_source_layout_for_reordered_files():
    """A writer that sorts keys (as the safetensors reference writer does)
    loses the state_dict order; the source model's layout restores it."""
    step, layer = tutorial_nets()
    sorted_state = dict(sorted(layer.state_dict().items()))
    with pytest.raises(ValueError, match="do not pair up"):
        checkpoints.convert_keys(sorted_state, step)
    converted = checkpoints.convert_keys(sorted_state, step, source=layer)
    assert_same_state(converted, checkpoints.convert_keys(layer, step))


def test_convert_keys_lists_what_does_not_pair_up():
    step, _ = tutorial_nets()
    other = Sequential(layers.Conv2d(3, 8, 3, bias=False), layers.BatchNorm2d(8),
                       layers.Conv2d(8, 4, 3))
    with pytest.raises(ValueError, match=r"'0.weight' \(8, 3, 3, 3\) -> '0.weight' "
                                         r"\(16, 3, 3, 3\) \(different shapes\)"):
        checkpoints.convert_keys(other, step)
    with pytest.raises(ValueError, match="checkpoint has 2 entries but the target layout "
                                         "has 8"):
        checkpoints.convert_keys(layers.Linear(2, 3), step)
    with pytest.raises(ValueError, match="source layout does not match"):
        checkpoints.convert_keys(layers.Linear(2, 3), ["weight", "bias"], source=["w", "b"])
