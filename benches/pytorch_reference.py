#!/usr/bin/env python3
"""PyTorch side of memvos's CPU speed table (optional tooling; nothing in memvos needs Python).

Times, on this machine's CPU with PyTorch's own kernels (oneDNN):

  --convs   every convolution shape of one STCN frame at 480p, as listed in
            crates/memvos-cpu/src/shapes.rs (read from that file, so both sides time the same
            table), in GFLOP/s, beside a 2048^3 float32 matmul (the machine's peak);
  --stream  STCN's inference path (--method stcn, the default; mivos, qdmn, gsfm and imsfr are
            written the same way below, see stream_method) (written here from the paper's architecture with random
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


# --- MiVOS, QDMN, GSFM, IMSFR, written from their architectures (methods.md §2) ---------------


class ResNet(nn.Module):  # to layer3: ResNet-50 (3 bottlenecks, 4, 6) or ResNet-101 (3, 4, 23)
    def __init__(self, cin=3, layer3=6, bias=False):
        super().__init__()
        self.stem = stem(cin)
        self.layer1 = nn.Sequential(Bottleneck(64, 64, 1), Bottleneck(256, 64, 1), Bottleneck(256, 64, 1))
        self.layer2 = nn.Sequential(Bottleneck(256, 128, 2), *[Bottleneck(512, 128, 1) for _ in range(3)])
        self.layer3 = nn.Sequential(Bottleneck(512, 256, 2), *[Bottleneck(1024, 256, 1) for _ in range(layer3 - 1)])

    def forward(self, x):
        f4 = self.layer1(self.stem(x))
        f8 = self.layer2(f4)
        return self.layer3(f8), f8, f4


class MivosUpsample(nn.Module):  # the skip path has one more ResBlock
    def __init__(self, skip_c, up_c, out_c):
        super().__init__()
        self.skip_conv1, self.skip_conv2 = nn.Conv2d(skip_c, up_c, 3, 1, 1), ResBlock(up_c, up_c)
        self.out = ResBlock(up_c, out_c)

    def forward(self, skip, up):
        x = self.skip_conv2(self.skip_conv1(skip)) + F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(x)


class MivosDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.compress = ResBlock(1024, 512)
        self.up_16_8, self.up_8_4 = MivosUpsample(512, 512, 256), MivosUpsample(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, 1, 1)

    def forward(self, x, f8, f4):
        x = self.up_8_4(f4, self.up_16_8(f8, self.compress(x)))
        return F.interpolate(self.pred(F.relu(x)), scale_factor=4, mode="bilinear", align_corners=False)


class Aspp(nn.Module):  # QDMN's, on the decoder's 1024 input channels
    def __init__(self, c=1024, b=256):
        super().__init__()
        branch = lambda k, d: nn.Sequential(nn.Conv2d(c, b, k, 1, 0 if k == 1 else d, d, bias=False), bn(b), nn.ReLU())
        self.branches = nn.ModuleList([branch(1, 1), branch(3, 6), branch(3, 12), branch(3, 18)])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, b, 1, bias=False), bn(b), nn.ReLU())
        self.out = nn.Sequential(nn.Conv2d(5 * b, c, 1, bias=False), bn(c), nn.ReLU())

    def forward(self, x):
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.out(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class Score(nn.Module):  # QDMN's quality head
    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(1024, 256, 3, 1, 1), nn.ReLU(), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.Conv2d(256, 256, 3, 2, 1), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(256 * 12 * 12, 1024), nn.ReLU(), nn.Linear(1024, 1), nn.ReLU())

    def forward(self, f16):
        return self.fc(self.convs(F.interpolate(f16, size=(24, 24), mode="bilinear", align_corners=False)).flatten(1))


class Mivos(nn.Module):  # QDMN when `qdmn`: the previous-mask gate, ASPP, the quality head
    def __init__(self, qdmn=False):
        super().__init__()
        self.rgb_encoder, self.mask_rgb_encoder = ResNet(3), ResNet(5)
        self.kv_q = nn.ModuleList([nn.Conv2d(1024, 128, 3, 1, 1), nn.Conv2d(1024, 512, 3, 1, 1)])
        self.kv_m = nn.ModuleList([nn.Conv2d(1024, 128, 3, 1, 1), nn.Conv2d(1024, 512, 3, 1, 1)])
        self.decoder = MivosDecoder()
        self.qdmn = qdmn
        if qdmn:
            self.concat_conv, self.aspp, self.score = nn.Conv2d(1025, 1, 3, 1, 1), Aspp(), Score()

    def query(self, x, prev):
        f16, f8, f4 = self.rgb_encoder(x)
        g = f16
        if self.qdmn and prev is not None:
            m = F.interpolate(prev, size=f16.shape[2:], mode="bilinear", align_corners=False)
            g = f16 * torch.sigmoid(self.concat_conv(torch.cat([f16, m], 1)))
        return self.kv_q[0](g), self.kv_q[1](g), f8, f4, f16

    def memory(self, x, fg, others, f16_unused):
        f16 = self.mask_rgb_encoder(torch.cat([x.expand(fg.shape[0], -1, -1, -1), fg, others], 1))[0]
        if self.qdmn:
            self.score(f16)
        return self.kv_m[0](f16), self.kv_m[1](f16)

    def read(self, mem, qk):  # per object: dot product / sqrt(128), top-50
        keys, values = mem
        k = torch.cat(keys, 2)  # [K, 128, N]
        v = torch.cat(values, 2)  # [K, 512, N]
        out = []
        for o in range(k.shape[0]):
            affinity = k[o].t() @ qk / math.sqrt(k.shape[1])
            top, idx = affinity.topk(min(50, affinity.shape[0]), dim=0)
            sparse = torch.zeros_like(affinity).scatter_(0, idx, torch.softmax(top, 0))
            out.append(v[o] @ sparse)
        return torch.stack(out)

    def decode(self, readout, qv, f8, f4):
        k = readout.shape[0]
        x = torch.cat([readout.view(k, -1, *qv.shape[2:]), qv.expand(k, -1, -1, -1)], 1)
        if self.qdmn:
            x = self.aspp(x)
        return self.decoder(x, f8.expand(k, -1, -1, -1), f4.expand(k, -1, -1, -1))


class Spectral(nn.Module):  # GSFM's LFM/HFM with torch.fft, as the published code
    def __init__(self, c, low):
        super().__init__()
        self.conv1, self.conv2, self.low = nn.Conv2d(2 * c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 1), low

    def forward(self, x):
        h, w = x.shape[2:]
        u = torch.arange(h)[:, None] - h // 2
        v = torch.arange(w)[None, :] - w // 2
        g = torch.exp(-(u**2 + v**2) / (2 * 7.0**2))
        g = 1 - g if self.low else g
        y = torch.fft.fft2(x) * g
        z = self.conv2(F.relu(self.conv1(torch.cat([y.real, y.imag], 1))))
        re, im = z.chunk(2, 1)
        return x + torch.fft.ifft2(torch.complex(re, im)).real


class GsfmDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = Decoder()
        c = 256
        conv3 = lambda o=c: nn.Conv2d(c, o, 3, 1, 1)
        self.boundary_1, self.mask_1, self.boundary_2, self.boundary_3 = conv3(), conv3(), conv3(), conv3()
        self.fusion_1, self.fusion_2, self.predict_mask = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), conv3()
        self.predict_boundary_1, self.predict_boundary_2 = conv3(), conv3(1)
        self.hfm = Spectral(c, low=False)

    def forward(self, x, f8, f4):
        t = self.trunk
        x = t.up_8_4(f4, t.up_16_8(f8, t.compress(x)))
        hfm = self.hfm(self.boundary_1(x))
        m = self.mask_1(x)
        b = hfm + F.relu(self.fusion_1(m))
        b = F.relu(self.boundary_3(self.boundary_2(b)))
        m = self.predict_mask(m + F.relu(self.fusion_2(b)))
        self.predict_boundary_2(F.relu(self.predict_boundary_1(b)))  # the published forward computes it
        return F.interpolate(t.pred(F.relu(m)), scale_factor=4, mode="bilinear", align_corners=False)


class StcnLike(nn.Module):  # GSFM (`gsfm`) or IMSFR (`imsfr`)
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.key_encoder = ResNet(3, layer3=23 if kind == "imsfr" else 6)
        self.value_encoder = ValueEncoder()
        self.key_comp = nn.Conv2d(1024, 512, 3, 1, 1)
        if kind == "gsfm":
            self.lfm, self.key_proj, self.decoder = Spectral(1024, low=True), nn.Conv2d(1024, 64, 3, 1, 1), GsfmDecoder()
        else:
            self.value_mask = nn.Conv2d(256, 512, 3, 1, 1)
            self.conv_fusion1v, self.conv_fusion = nn.Conv2d(13 * 512, 512, 1), nn.Conv2d(512, 512, 1)
            self.mask, self.decoder = nn.Conv2d(3 * 512, 512, 3, 1, 1), Decoder()

    def query(self, x, prev_unused):
        f16, f8, f4 = self.key_encoder(x)
        if self.kind == "gsfm":
            f16 = self.lfm(f16)
            return self.key_proj(f16), self.key_comp(f16), f8, f4, f16
        k = self.key_comp(f16)
        return k, k, f8, f4, f16

    def memory(self, x, fg, others, f16, nxt=None):
        ve = self.value_encoder
        k = fg.shape[0]
        v = ve(x.expand(k, -1, -1, -1), fg, others, f16.expand(k, -1, -1, -1))
        if self.kind == "gsfm":
            return v, None
        trunk = lambda img: ve.layer3(ve.layer2(ve.layer1(ve.stem(torch.cat([img.expand(k, -1, -1, -1), fg, others], 1)))))
        v = v * torch.sigmoid(self.value_mask(trunk(nxt)))
        pe = torch.cat([v] + [f(v * 2**i) for i in range(6) for f in (torch.sin, torch.cos)], 1)
        return v, self.conv_fusion(v + self.conv_fusion1v(pe))

    def read(self, mem, qk):
        keys, values, aux = mem
        top = 50 if self.kind == "gsfm" else 4
        if self.kind == "gsfm":
            return read_memory(torch.cat(keys, 1), torch.cat(values, 2), qk, top)
        r_mem = read_memory(torch.cat(keys, 1), torch.cat(values, 2), qk, top)
        r_first = read_memory(keys[0], values[0], qk, keys[0].shape[1])
        r_adj = read_memory(keys[-1], aux[-1], qk, keys[-1].shape[1])
        return r_mem, r_first, r_adj

    def decode(self, readout, qv, f8, f4):
        if self.kind == "imsfr":
            r_mem, r_first, r_adj = (r.view(r.shape[0], 512, *qv.shape[2:]) for r in readout)
            z = torch.cat([r_mem, r_first, r_adj], 1)
            readout = (1 + torch.sigmoid(self.mask(z + z.mean((2, 3), keepdim=True)))) * (r_mem + r_first + r_adj)
        k = readout.shape[0]
        readout = readout.view(k, 512, *qv.shape[2:])
        return self.decoder(torch.cat([readout, qv.expand(k, -1, -1, -1)], 1), f8.expand(k, -1, -1, -1), f4.expand(k, -1, -1, -1))


def stream_method(method, objects, frames):
    """MiVOS/QDMN (memory every 5th frame, the previous frame as temporary memory each frame,
    per-object keys, top-50), GSFM (every 3rd frame, top-50), IMSFR (every 6th frame, gated by the
    next frame; top-4 of all stored frames, the first and the newest in full), as memvos runs them."""
    net = {"mivos": lambda: Mivos(), "qdmn": lambda: Mivos(qdmn=True), "gsfm": lambda: StcnLike("gsfm"), "imsfr": lambda: StcnLike("imsfr")}[method]().eval()
    every = {"mivos": 5, "qdmn": 5, "gsfm": 3, "imsfr": 6}[method]
    per_object = method in ("mivos", "qdmn")
    h, w, hp = 480, 854, 864
    video = [F.pad(torch.rand(1, 3, h, w), (0, hp - w, 0, 0)) for _ in range(frames + 1)]
    masks0 = torch.zeros(objects, 1, h, hp)
    for k in range(objects):
        masks0[k, :, 100 + 20 * k: 300, 100 + 150 * k: 250 + 150 * k] = 1
    with torch.inference_mode():
        keys, values, aux = [], [], []
        prob, prev = None, None
        total = time.perf_counter()
        for i in range(frames):
            if i == 1:
                total = time.perf_counter()
            x = video[i]
            qk, qv, f8, f4, f16 = net.query(x, prev)
            if i == 0:
                prob = aggregate(masks0)
            else:
                mem = (keys, values) if per_object else (keys, values, aux)
                temp = None
                if per_object and i % every != 1 and i > 1:  # the previous frame as temporary memory
                    fg = prob[1:]
                    others = fg.sum(0, keepdim=True) - fg
                    temp = net.memory(video[i - 1], fg, others, None)
                    mem = (keys + [temp[0].flatten(2)], values + [temp[1].flatten(2)])
                readout = net.read(mem, qk.flatten(2)[0])
                logits = net.decode(readout, qv, f8, f4)
                prob = aggregate(torch.sigmoid(logits))
                prob[:, :, :, :w].argmax(0)
            prev = prob[1:].amax(0, keepdim=True)
            if i % every == 0:
                fg = prob[1:]
                others = fg.sum(0, keepdim=True) - fg
                if per_object:
                    mk, mv = net.memory(x, fg, others, f16)
                    keys.append(mk.flatten(2))
                    values.append(mv.flatten(2))
                else:
                    v, a = net.memory(x, fg, others, f16, video[i + 1])
                    keys.append(qk.flatten(2)[0])
                    values.append(v.flatten(2))
                    aux.append(a.flatten(2) if a is not None else None)
        elapsed = time.perf_counter() - total
    n = frames - 1
    print(f"PyTorch {method}, {objects} object(s), {frames} frames 854x480: {1e3 * elapsed / n:.0f} ms per frame, {n / elapsed:.2f} FPS")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--convs", action="store_true")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--method", default="stcn", choices=["stcn", "mivos", "qdmn", "gsfm", "imsfr"])
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
    if a.stream and a.method == "stcn":
        stream(a.objects, a.frames)
    elif a.stream:
        stream_method(a.method, a.objects, a.frames)


if __name__ == "__main__":
    main()
