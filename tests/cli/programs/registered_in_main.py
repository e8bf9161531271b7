"""Agents declared inside ``main()`` before ``app.main()`` (as faust-streaming's
examples/bound_agent.py does): only ``python registered_in_main.py worker`` has them."""

import streamlog as faust

app = faust.App("registered-in-main", topic_partitions=1)
print("registered_in_main imported", flush=True)


def main() -> None:
    numbers = app.topic("numbers", value_type=int)
    squares = app.topic("squares", value_type=int)

    @app.agent(numbers, name="squarer")
    async def square(stream):
        async for number in stream:
            await squares.send(value=number * number)

    app.main()


if __name__ == "__main__":
    main()
