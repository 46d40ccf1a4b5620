#!/usr/bin/env python3
"""PyTorch side of memvos's CPU speed table (optional tooling; nothing in memvos needs Python).

Times, on this machine's CPU with PyTorch's own kernels (oneDNN):

  --convs   every convolution shape of one STCN frame at 480p, as listed in
            crates/memvos-cpu/src/shapes.rs (read from that file, so both sides time the same
            table), in GFLOP/s, beside a 2048^3 float32 matmul (the machine's peak);
  --stream  STCN's inference path (written here from the paper's architecture with random
            weights, BatchNorm in eval mode: ResNet-50 key encoder to layer3, 3x3 key projection
            and compression, ResNet-18 value encoder on image + mask + other objects, fusion block
            with CBAM, negative squared-L2 affinity with top-20, the three-stage decoder, soft
            aggregation) on `--frames` random 854x480 frames padded to 864x480, memory written every
            5th frame, `--objects` objects; prints ms per stage and frames per second, I/O excluded.

The memvos side of the same run: `cargo bench --bench conv_shapes` and
`cargo run --release --example stage_times -- --objects K --stream 30`;
`benches/speed_table.sh` runs both sides interleaved and prints the README's table.

Setup (once): python3 -m venv .venv-bench && .venv-bench/bin/pip install torch numpy
Usage: .venv-bench/bin/python benches/pytorch_reference.py --stream --objects 1 --threads 2
"""

import argparse
import math
import pathlib
import re
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# --- the conv table -------------------------------------------------------------------------


def conv_shapes():
    text = (ROOT / "crates/memvos-cpu/src/shapes.rs").read_text()
    pat = re.compile(r'c\("([^"]+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)')
    for m in pat.finditer(text):
        name = m.group(1)
        cin, cout, k, stride, h, w, count = map(int, m.groups()[1:])
        yield name, cin, cout, k, stride, h, w, count


def time_convs(repeats):
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    peak = 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9
    print(f"matrix-product peak (2048^3 f32): {peak:.1f} GFLOP/s\n")
    print("| conv | input | per frame | ms | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|")
    total_ms = 0.0
    with torch.inference_mode():
        for name, cin, cout, k, stride, h, w, count in conv_shapes():
            x = torch.randn(1, cin, h, w)
            conv = nn.Conv2d(cin, cout, k, stride, k // 2).eval()
            t = median_seconds(lambda: F.relu(conv(x)), repeats)
            ho, wo = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
            flops = 2 * ho * wo * cin * k * k * cout
            total_ms += count * t * 1e3
            print(f"| {name} | {cin}x{h}x{w} | {count} | {t * 1e3:.2f} | {flops / t / 1e9:.1f} | {100 * flops / t / 1e9 / peak:.0f}% |")
    print(f"\nall convolutions of one frame (counts applied): {total_ms:.0f} ms")


# --- STCN, written from the architecture -------------------------------------------------------


def bn(c):
    return nn.BatchNorm2d(c)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), bn(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), bn(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


def stem(cin):
    return nn.Sequential(nn.Conv2d(cin, 64, 7, 2, 3, bias=False), bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))


class KeyEncoder(nn.Module):  # ResNet-50 to layer3
    def __init__(self):
        super().__init__()
        self.stem = stem(3)
        self.layer1 = nn.Sequential(Bottleneck(64, 64, 1), Bottleneck(256, 64, 1), Bottleneck(256, 64, 1))
        self.layer2 = nn.Sequential(Bottleneck(256, 128, 2), *[Bottleneck(512, 128, 1) for _ in range(3)])
        self.layer3 = nn.Sequential(Bottleneck(512, 256, 2), *[Bottleneck(1024, 256, 1) for _ in range(5)])

    def forward(self, x):
        f4 = self.layer1(self.stem(x))
        f8 = self.layer2(f4)
        return self.layer3(f8), f8, f4


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.down = None if cin == cout else nn.Conv2d(cin, cout, 3, 1, 1)

    def forward(self, x):
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        return r + (x if self.down is None else self.down(x))


class Cbam(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(c, c // 16), nn.ReLU(), nn.Linear(c // 16, c))
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, 1, 3), bn(1))

    def forward(self, x):
        att = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        x = x * torch.sigmoid(att)[:, :, None, None]
        s = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(s))


class ValueEncoder(nn.Module):  # ResNet-18 to layer3 on image + mask + other objects, fused with f16
    def __init__(self):
        super().__init__()
        self.stem = stem(5)
        self.layer1 = nn.Sequential(Basic(64, 64, 1), Basic(64, 64, 1))
        self.layer2 = nn.Sequential(Basic(64, 128, 2), Basic(128, 128, 1))
        self.layer3 = nn.Sequential(Basic(128, 256, 2), Basic(256, 256, 1))
        self.block1, self.att, self.block2 = ResBlock(1024 + 256, 512), Cbam(512), ResBlock(512, 512)

    def forward(self, image, mask, others, f16):
        x = self.layer3(self.layer2(self.layer1(self.stem(torch.cat([image, mask, others], 1)))))
        x = self.block1(torch.cat([x, f16], 1))
        return self.block2(x + self.att(x))


class Upsample(nn.Module):
    def __init__(self, skip_c, up_c, out_c):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_c, up_c, 3, 1, 1)
        self.out = ResBlock(up_c, out_c)

    def forward(self, skip, up):
        x = self.skip_conv(skip) + F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.compress = ResBlock(1024, 512)
        self.up_16_8, self.up_8_4 = Upsample(512, 512, 256), Upsample(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, 1, 1)

    def forward(self, f16, f8, f4):
        x = self.up_8_4(f4, self.up_16_8(f8, self.compress(f16)))
        return F.interpolate(self.pred(F.relu(x)), scale_factor=4, mode="bilinear", align_corners=False)


class Stcn(nn.Module):
    def __init__(self):
        super().__init__()
        self.key_encoder, self.value_encoder, self.decoder = KeyEncoder(), ValueEncoder(), Decoder()
        self.key_proj = nn.Conv2d(1024, 64, 3, 1, 1)
        self.key_comp = nn.Conv2d(1024, 512, 3, 1, 1)


def read_memory(mk, mv, qk, top_k=20):
    # mk [Ck, T*HW], mv [K, Cv, T*HW], qk [Ck, HW] -> [K, Cv, HW]
    ck = mk.shape[0]
    affinity = (2 * mk.t() @ qk - mk.pow(2).sum(0)[:, None]) / math.sqrt(ck)  # [THW, HW]
    values, idx = affinity.topk(top_k, dim=0)
    weights = torch.softmax(values, 0)
    sparse = torch.zeros_like(affinity).scatter_(0, idx, weights)
    return torch.stack([v @ sparse for v in mv])


def aggregate(prob):  # [K, 1, H, W] -> [K+1, 1, H, W]
    bg = torch.prod(1 - prob, 0, keepdim=True)
    p = torch.cat([bg, prob], 0).clamp(1e-7, 1 - 1e-7)
    return torch.softmax(torch.log(p / (1 - p)), 0)


def stream(objects, frames, repeats_unused=None):
    net = Stcn().eval()
    h, w, hp = 480, 854, 864
    video = [torch.rand(1, 3, h, w) for _ in range(frames)]
    masks0 = torch.zeros(objects, 1, h, w)
    for k in range(objects):
        masks0[k, :, 100 + 20 * k: 300, 100 + 150 * k: 250 + 150 * k] = 1
    stages = {s: 0.0 for s in ["key encoder", "key proj+comp", "memory read", "decoder", "value encoder", "rest"]}

    def clock(name, fn):
        t = time.perf_counter()
        out = fn()
        stages[name] += time.perf_counter() - t
        return out

    with torch.inference_mode():
        mk, mv = [], []
        prob = None
        total = time.perf_counter()
        for i, frame in enumerate(video):
            if i == 1:  # the first frame is the given mask's; time from the second on
                total = time.perf_counter()
                stages = {s: 0.0 for s in stages}
            x = clock("rest", lambda: F.pad(frame, (0, hp - w, 0, 0)))
            f16, f8, f4 = clock("key encoder", lambda: net.key_encoder(x))
            k16, qv = clock("key proj+comp", lambda: (net.key_proj(f16), net.key_comp(f16)))
            if i == 0:
                prob = aggregate(F.pad(masks0, (0, hp - w, 0, 0)))
            else:
                qk = k16.flatten(2)[0]
                mem_k = torch.cat(mk, 1)
                mem_v = torch.cat(mv, 2)
                readout = clock("memory read", lambda: read_memory(mem_k, mem_v, qk).view(objects, 512, *k16.shape[2:]))
                logits = clock("decoder", lambda: net.decoder(torch.cat([readout, qv.expand(objects, -1, -1, -1)], 1), f8.expand(objects, -1, -1, -1), f4.expand(objects, -1, -1, -1)))
                prob = clock("rest", lambda: aggregate(torch.sigmoid(logits)))
                clock("rest", lambda: prob[:, :, :, :w].argmax(0))
            if i % 5 == 0:
                fg = prob[1:]
                others = torch.stack([fg[[j for j in range(objects) if j != k]].sum(0) if objects > 1 else torch.zeros_like(fg[0]) for k in range(objects)])
                value = clock("value encoder", lambda: net.value_encoder(x.expand(objects, -1, -1, -1), fg, others, f16.expand(objects, -1, -1, -1)))
                mk.append(k16.flatten(2)[0])
                mv.append(value.flatten(2))
        elapsed = time.perf_counter() - total
    n = frames - 1
    print("| stage | ms per frame |")
    print("|---|---|")
    for s, t in stages.items():
        print(f"| {s} | {1e3 * t / n:.0f} |")
    print(f"\nPyTorch STCN, {objects} object(s), {frames} frames 854x480: {1e3 * elapsed / n:.0f} ms per frame, {n / elapsed:.2f} FPS")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--convs", action="store_true")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--objects", type=int, default=1)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.convs:
        time_convs(a.repeats)
    if a.stream:
        stream(a.objects, a.frames)


if __name__ == "__main__":
    main()
