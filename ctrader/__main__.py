"""``python -m ctrader ...``: the same CLI as the ``ctrader`` command."""
from ctrader.cli.main import app

if __name__ == "__main__":
    app(prog_name="ctrader")
