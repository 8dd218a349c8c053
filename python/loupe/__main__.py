"""`python -m loupe` and the `loupe` command: the CLI binary that comes with the wheel."""
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    binary = os.path.join(here, "_native", "loupe")
    if not os.path.exists(binary):
        sys.exit(f"loupe: the command-line binary is not at {binary} (install the wheel: make wheel)")
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()
