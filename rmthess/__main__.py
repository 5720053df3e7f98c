"""``python -m rmthess``: the ``rmthess`` command line."""

from rmthess.cli import entry

if __name__ == "__main__":
    entry()
