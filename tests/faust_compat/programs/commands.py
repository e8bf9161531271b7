"""An app's own commands, written for Faust: the same program runs on faust-streaming and
on streamlog, and prints the same (tests/faust_compat/test_against_faust.py)."""

import faust
from faust.cli import AppCommand, argument, option

app = faust.App("compat-commands")


@app.command(option("--n", type=int, default=1, help="Times."), argument("name"))
async def greet(self, n: int, name: str) -> None:
    """Greets NAME N times."""
    for i in range(n):
        self.say(f"hello {name} #{i}")
    print(f"{type(self).__name__} AppCommand={isinstance(self, AppCommand)} app={self.app is app}")
    print(f"args={self.args} kwargs={sorted(self.kwargs.items())}")


@app.command(argument("location"), argument("name"))
async def joining(self, location: str, name: str) -> None:
    print(f"{name} joined {location}")


@app.command()
async def bare():
    print("bare ran")


@app.command()
async def add_one_more(self) -> None:
    print(f"{type(self).__name__} ran")


@app.command()
async def fails(self) -> None:
    raise ValueError("no luck")


if __name__ == "__main__":
    app.main()
