"""course.devices: CUDA's device rules on the CPU. Which mistakes it catches, which correct code it accepts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course.devices import GPU, DeviceMismatch, FakeGPU, on_gpu


def gpu_input(gpu, *shape, dtype=torch.float32):
    return gpu.put(torch.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) + 1)


# -- what correct code does ------------------------------------------------------------------------------------
def test_put_gives_a_marked_copy_and_device_reports_cuda():
    with FakeGPU() as gpu:
        x = torch.ones(2, 3)
        y = gpu.put(x)
        assert y.device == GPU and y.is_cuda and str(y.device) == "cuda:0"
        assert not on_gpu(x) and x.device.type == "cpu", "the probe's own tensor stays on the CPU"
        assert (y * 2 + 1).device == GPU and y.sum().device == GPU and y[0].device == GPU


@pytest.mark.parametrize(
    "make",
    [
        lambda x: torch.zeros(x.shape[0], 4, device=x.device),
        lambda x: torch.arange(x.shape[1], device=x.device),
        lambda x: torch.zeros_like(x),
        lambda x: x.new_zeros(3),
        lambda x: torch.ones(5).to(x.device),
        lambda x: torch.ones(5).to(x),
        lambda x: torch.tril(torch.ones(4, 4, device=x.device)).bool(),
        lambda x: torch.randn(3, device=x.device),
    ],
    ids=["zeros", "arange", "zeros_like", "new_zeros", "to_device", "to_tensor", "mask", "randn"],
)
def test_tensors_made_on_the_input_device_are_on_the_gpu(make):
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 2, 3)
        assert make(x).device == GPU


def test_correct_code_runs_and_computes_the_same_values():
    def one_hot(y, c):
        out = torch.zeros(len(y), c, device=y.device)
        out[torch.arange(len(y), device=y.device), y] = 1.0
        return out

    y = torch.tensor([2, 0, 1])
    with FakeGPU() as gpu:
        found = one_hot(gpu.put(y), 3)
        assert found.device == GPU
        found = found.cpu()
    assert not on_gpu(found) and torch.equal(found, one_hot(y, 3))


def test_cpu_scalars_and_cpu_indices_mix_with_gpu_tensors_as_on_cuda():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 3, 4)
        assert (x * torch.tensor(2.0)).device == GPU  # a 0-dim CPU tensor may meet a CUDA one
        assert x[torch.tensor([0, 2])].shape == (2, 4)  # CPU indices into a CUDA tensor are allowed
        x[torch.tensor([1])] = 0.0
        assert x.device == GPU


def test_a_module_moved_to_the_device_trains_there():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 5, 3)
        model = torch.nn.Linear(3, 2).to(x.device)
        assert model.weight.device == GPU and model.bias.device == GPU
        loss = F.cross_entropy(model(x), torch.tensor([0, 1, 0, 1, 1], device=x.device))
        loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        assert model.weight.grad.device == GPU and model.weight.device == GPU
        assert loss.item() == pytest.approx(loss.detach().cpu().item())


def test_a_module_moved_to_a_gpu_tensor_lands_on_the_gpu():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 5, 3, dtype=torch.float64)
        model = torch.nn.Linear(3, 2).to(x)
        assert model.weight.device == GPU and model.weight.dtype == torch.float64
        assert model(x).device == GPU
        with torch.no_grad():
            model.bias.copy_(x[0, :2])  # both on the GPU: no mismatch
    assert not on_gpu(torch.nn.Linear(3, 2).to(x).weight), "outside the mode, .to(x) is the CPU again"


def test_cpu_and_to_cpu_give_cpu_copies_and_numpy_works_after_them():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 2, 2)
        assert x.cpu().device.type == "cpu" and x.to("cpu").device.type == "cpu"
        assert on_gpu(x), "moving a copy leaves the original where it was"
        assert x.detach().cpu().numpy().shape == (2, 2)
        assert x.float().device == GPU and x.to(torch.float64).device == GPU


# -- the mistakes it catches -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mistake",
    [
        lambda x: x + torch.zeros(x.shape),
        lambda x: x[:, : x.shape[0]].masked_fill(torch.tril(torch.ones(x.shape[0], x.shape[0])) == 0, 0.0),
        lambda x: torch.cat([x, torch.ones(1, x.shape[1])]),
        lambda x: x @ torch.eye(x.shape[1]),
        lambda x: torch.where(torch.ones(x.shape, dtype=torch.bool), x, torch.zeros(x.shape)),
        lambda x: F.cross_entropy(x, torch.zeros(x.shape[0], dtype=torch.long)),
        lambda x: torch.nn.Linear(x.shape[1], 2)(x),
        lambda x: x + torch.tensor([1.0]),  # one element, but one dimension: not a scalar
    ],
    ids=["add", "mask", "cat", "matmul", "where", "labels", "module", "1-element"],
)
def test_a_cpu_tensor_meeting_the_input_fails_naming_the_devices(mistake):
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 3, 4)
        with pytest.raises(DeviceMismatch) as info:
            mistake(x)
    text = str(info.value)
    assert "cuda:0 and cpu" in text and "device=x.device" in text and "on the CPU" in text


def test_a_cpu_tensor_indexed_with_gpu_indices_fails():
    with FakeGPU() as gpu:
        y = gpu.put(torch.tensor([0, 2, 1]))
        out = torch.zeros(3, 3)  # forgot device=y.device
        with pytest.raises(DeviceMismatch, match="indices should be either on cpu or on the same device"):
            out[torch.arange(3), y] = 1.0


def test_numpy_of_a_gpu_tensor_fails_as_on_cuda():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 2)
        with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
            x.numpy()


def test_a_gpu_tensor_drawn_with_a_cpu_generator_fails():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 2)
        with pytest.raises(DeviceMismatch, match="Expected a 'cuda' device type for generator"):
            torch.randn(3, device=x.device, generator=torch.Generator().manual_seed(0))


def test_outside_the_mode_everything_is_on_the_cpu_again():
    with FakeGPU() as gpu:
        x = gpu_input(gpu, 2)
    assert x.device.type == "cpu" and (x + torch.zeros(2)).shape == (2,)
