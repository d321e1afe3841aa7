"""``python -m mlzen``: the command line."""

from mlzen.cli.main import main

if __name__ == "__main__":
    main()
