"""Writes torch's own 16-bit conversions, the independent truth for test_element.cpp.

Usage: element_reference.py OUT_DIR
  half_to_float.bin      65536 little-endian float32: every binary16 bit pattern as float
  bfloat16_to_float.bin  65536 float32: every bfloat16 bit pattern as float
  float_inputs.bin       float32 inputs: for every finite 16-bit value of each type, the
                         midpoint to the next value and its two float32 neighbours, plus
                         random floats over the whole range and special values
  float_to_half.bin      uint16 per input: torch's float32 -> float16 (round to nearest even)
  float_to_bfloat16.bin  uint16 per input: torch's float32 -> bfloat16
"""
import os
import sys

import numpy as np
import torch


def main() -> None:
    out = sys.argv[1]
    patterns = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    half = patterns.view(torch.float16).float()
    bf16 = patterns.view(torch.bfloat16).float()
    half.numpy().astype("<f4").tofile(os.path.join(out, "half_to_float.bin"))
    bf16.numpy().astype("<f4").tofile(os.path.join(out, "bfloat16_to_float.bin"))

    inputs = []
    for values in (half.numpy(), bf16.numpy()):
        finite = np.sort(np.unique(values[np.isfinite(values)]))
        mid = ((finite[:-1].astype(np.float64) + finite[1:].astype(np.float64)) / 2).astype(np.float32)
        inputs += [finite, mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))]
    rng = np.random.default_rng(20201116)
    bits = rng.integers(0, 2**32, size=200000, dtype=np.uint64).astype(np.uint32)
    inputs.append(bits.view(np.float32))
    inputs.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 1e-8, -1e-8,
                            5.96e-8, 2.98e-8, 2.99e-8, 3.4e38, -3.4e38, 1.0e-45], dtype=np.float32))
    inputs = np.concatenate(inputs).astype(np.float32)
    inputs.astype("<f4").tofile(os.path.join(out, "float_inputs.bin"))
    as_torch = torch.from_numpy(inputs)
    as_torch.to(torch.float16).view(torch.int16).numpy().astype("<u2").tofile(os.path.join(out, "float_to_half.bin"))
    as_torch.to(torch.bfloat16).view(torch.int16).numpy().astype("<u2").tofile(
        os.path.join(out, "float_to_bfloat16.bin"))


if __name__ == "__main__":
    main()
