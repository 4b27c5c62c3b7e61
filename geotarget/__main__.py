"""``python -m geotarget`` runs the command line."""

from geotarget.cli import run

if __name__ == "__main__":
    run()
