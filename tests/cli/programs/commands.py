"""An app whose command line has commands of its own (Faust's ``@app.command``)."""

import os

import streamlog as faust
from streamlog.cli import AppCommand, argument, option

app = faust.App("commands", broker="memory://")
letters = app.topic("letters", partitions=1)


@app.command(option("--n", type=int, default=1, help="Times."), argument("name"))
async def greet(self, n: int, name: str) -> None:
    """Greets NAME N times."""
    for i in range(n):
        self.say(f"hello {name} #{i}")
    print(f"{type(self).__name__}: AppCommand={isinstance(self, AppCommand)} app={self.app is app}")


@app.command(argument("location"), argument("name"))
async def joining(self, location: str, name: str) -> None:
    print(f"{name} joined {location}")


@app.command()
async def bare():
    """Takes nothing."""
    print("bare ran")


@app.command()
async def fails(self) -> None:
    raise ValueError("no luck")


@app.command(option("--count", type=int, default=3))
async def send_letters(self, count: int) -> None:
    for i in range(count):
        md = await letters.send_and_wait(value=chr(ord("a") + i))
        print(f"{md.topic}[{md.partition}]@{md.offset}")


@app.command()
async def state(self) -> None:
    """Prints what the global options set."""
    self.carp("carped")
    print(f"cwd={os.path.basename(os.getcwd())} datadir={self.app.conf.datadir}")
    print(f"json={self.json} debug={self.debug} quiet={self.quiet} loglevel={self.loglevel}")
    print(self.tabulate([("a", 1), ("b", 22)], headers=("NAME", "N")))


if __name__ == "__main__":
    app.main()
