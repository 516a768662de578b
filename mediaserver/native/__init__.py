"""C parts of the packet path, compiled by cffi when the package is installed (setup.py).

Each module has its C source (`<name>.c`) and a build script (`<name>_build.py`) that declares
what Python calls; the compiled extension is `mediaserver.native._<name>`. The Python code they
replace stays as the reference the tests compare them with, byte for byte.
"""
