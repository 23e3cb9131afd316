#!/usr/bin/env python3
"""Writes stub shared libraries for the CUDA libraries cudarc links against, so that a
`--features cuda` build links on a machine without a GPU or an NVIDIA driver.

Every function cudarc's FFI declares (read from its `src/<lib>/sys/mod.rs`) becomes a C
function that returns an error code: `cuInit` answers CUDA_ERROR_NO_DEVICE (100), so a
cuda binary starts and reports that there is no GPU. Each stub carries the SONAME of the
real library (`libcuda.so.1`, ...): a binary linked against the stubs loads the real
libraries on a GPU machine. Keep the stub folder off LD_LIBRARY_PATH there.

    cuda_stubs.py CUDARC_SOURCE_DIR OUT_DIR
"""

import re
import subprocess
import sys
from pathlib import Path

# cudarc module -> (library name, SONAME of the real library, error code to return).
LIBRARIES = {
    "driver": ("cuda", "libcuda.so.1", 100),  # CUDA_ERROR_NO_DEVICE
    "cublas": ("cublas", "libcublas.so.13", 1),  # CUBLAS_STATUS_NOT_INITIALIZED
    "cublaslt": ("cublasLt", "libcublasLt.so.13", 1),
    "curand": ("curand", "libcurand.so.10", 201),  # CURAND_STATUS_NOT_INITIALIZED
    "nvrtc": ("nvrtc", "libnvrtc.so.13", 1),  # NVRTC_ERROR_OUT_OF_MEMORY (any error)
}

FUNCTION = re.compile(r"^pub unsafe fn (\w+)\(", re.MULTILINE)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for module, (name, soname, code) in LIBRARIES.items():
        declarations = source / "src" / module / "sys" / "mod.rs"
        names = sorted(set(FUNCTION.findall(declarations.read_text())))
        if not names:
            print(f"no functions found in {declarations}", file=sys.stderr)
            return 1
        c_file = out / f"{name}_stub.c"
        # Every stub returns the error code in the return register; callers stop at
        # the first error (cuInit), so no pointer-returning stub is ever reached.
        c_file.write_text(
            "".join(f"long {fn}(void) {{ return {code}; }}\n" for fn in names)
        )
        library = out / f"lib{name}.so"
        subprocess.run(
            ["cc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(library), str(c_file)],
            check=True,
        )
        real_name = out / soname
        if real_name.exists() or real_name.is_symlink():
            real_name.unlink()
        real_name.symlink_to(library.name)
        print(f"{library.name}: {len(names)} functions (SONAME {soname})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
