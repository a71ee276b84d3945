"""Smoke test helpers: `prepare DIR` traces a model and writes references;
`check DIR OUTPUTS` compares a runner's outputs with torch's own."""

import sys

import st_util
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, y):
        h = self.lin(x)
        a = torch.relu(h) + y
        return a, (torch.sigmoid(h) * 2.0, h.sum(dim=1))


def cases():
    g = torch.Generator().manual_seed(1)
    return {
        "validation": [torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)],
        "batch_1": [torch.randn(1, 4, generator=g), torch.randn(1, 3, generator=g)],
    }


def expected(dirpath):
    model = torch.jit.load(f"{dirpath}/model.pt").eval()
    out = {}
    with torch.no_grad():
        for name, inputs in cases().items():
            a, (b, c) = model(*inputs)
            out[name] = [a, b, c]
    return out


def prepare(dirpath):
    torch.manual_seed(0)
    net = Net().eval()
    ex = cases()["validation"]
    traced = torch.jit.trace(net, tuple(ex), check_trace=False)
    traced.save(f"{dirpath}/model.pt")
    tensors = {}
    with torch.no_grad():
        for name, inputs in cases().items():
            for i, t in enumerate(inputs):
                tensors[f"{name}/input/{i}"] = t
            a, (b, c) = net(*inputs)
            for j, t in enumerate([a, b, c]):
                tensors[f"{name}/output/{j}"] = t
    st_util.write(f"{dirpath}/refs.safetensors", tensors, {"format": "ttd-references/1", "cases": ",".join(cases())})


def check(dirpath, outputs_path):
    got, meta = st_util.read(outputs_path)
    assert meta.get("format") == "ttd-outputs/1", meta
    assert meta.get("runtime") == "libtorch", meta
    assert meta.get("torch_version"), meta
    want = expected(dirpath)
    names = {f"{c}/output/{j}" for c, outs in want.items() for j in range(len(outs))}
    assert set(got) == names, f"output names {sorted(got)} != {sorted(names)}"
    worst = 0.0
    for c, outs in want.items():
        for j, w in enumerate(outs):
            g = got[f"{c}/output/{j}"]
            assert g.dtype == w.dtype and g.shape == w.shape, (c, j, g.dtype, g.shape, w.dtype, w.shape)
            err = (g - w).abs().max().item()
            worst = max(worst, err)
            assert err <= 1e-5, f"{c}/output/{j}: max abs error {err} > 1e-5"
    print(f"ok: {outputs_path}: {len(got)} tensors, max abs error {worst:.3g}")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
