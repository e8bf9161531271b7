"""Agents declared in ``main()`` before ``app.main()``, as faust-streaming's
examples/bound_agent.py declares them; written for Faust and run unchanged by streamlog."""

import faust
from faust import ChannelT, StreamT

app = faust.App("bound-agents", topic_partitions=1)
print("bound_agents imported", flush=True)


class Reading(faust.Record):
    sensor: str
    value: float


def scaler(results: ChannelT, factor: float):
    async def scale(stream: StreamT[Reading]) -> None:
        async for reading in stream:
            await results.send(value=f"{reading.sensor}={reading.value * factor}")

    return scale


def main() -> None:
    readings = app.topic("readings", value_type=Reading)
    scaled = app.topic("scaled", value_type=str)
    app.agent(readings, name="scaler")(scaler(scaled, 10.0))
    app.main()


if __name__ == "__main__":
    main()
