#!/usr/bin/env python3
"""Registers and spills of generated kernels, without a GPU: compiles each kernel's CUDA C++ with NVRTC for sm_90a
and prints ptxas's report. A spill the device's `cuda-bench` would show as "B local" shows here first.

    export FLEXATTENTION_NVRTC="$(bash scripts/install-nvrtc.sh)"
    python3 scripts/kernel_registers.py fa_hopper_wide_backward_bfloat16_d256_dv256_st2 [more names or .cu files]

Names are printed by `flexattn kernel-source` (the release build in .build/release: rebuild it first, or it prints the
kernels of whatever code it was built from); a path ending in .cu is read as is.
"""
import ctypes
import os
import subprocess
import sys


def source(kernel):
    if kernel.endswith(".cu"):
        return open(kernel).read()
    return subprocess.run([".build/release/flexattn", "kernel-source", kernel], check=True,
                          capture_output=True, text=True).stdout


def report(nvrtc, text):
    program = ctypes.c_void_p()
    if nvrtc.nvrtcCreateProgram(ctypes.byref(program), text.encode(), b"kernel.cu", 0, None, None) != 0:
        return ["nvrtcCreateProgram failed"]
    options = [b"--gpu-architecture=sm_90a", b"--std=c++17", b"--ptxas-options=-v"]
    status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    lines = [l.strip() for l in log.value.decode().splitlines() if "spill" in l or "registers" in l or "error" in l]
    return lines if status == 0 else [f"compile failed ({status})"] + lines


def main():
    directory = os.environ.get("FLEXATTENTION_NVRTC")
    if not directory or len(sys.argv) < 2:
        sys.exit(__doc__)
    # NVRTC opens its builtins library by name: loaded first, globally, it is found without LD_LIBRARY_PATH.
    ctypes.CDLL(os.path.join(directory, "libnvrtc-builtins.so.13.0"), mode=ctypes.RTLD_GLOBAL)
    nvrtc = ctypes.CDLL(os.path.join(directory, "libnvrtc.so.13"))
    for kernel in sys.argv[1:]:
        print(kernel)
        for line in report(nvrtc, source(kernel)):
            print("  " + line)


if __name__ == "__main__":
    main()
