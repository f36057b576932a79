import subprocess
import sys
import textwrap

import pytest

#: In a fresh interpreter: free a 1 MB block (mapped on its own), then count the blocks that are
#: mapped on their own while a 512 KB block is held. glibc's default then serves 512 KB from a
#: heap (its mapping threshold grew to the 1 MB freed); tuned, the threshold stays at 128 KB.
PROBE = textwrap.dedent("""
    import ctypes, sys
    from streams.allocator import tune_malloc

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.mallinfo2.restype = ctypes.c_void_p, MallInfo2
    libc.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "tuned":
        assert tune_malloc()
    libc.free(libc.malloc(1 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(512 * 1024)
    print(libc.mallinfo2().hblks - before)
""")


def mapped_blocks(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_tuned_malloc_keeps_mapping_large_blocks_after_a_larger_one_was_freed():
    assert mapped_blocks("default") == 0
    assert mapped_blocks("tuned") == 1
