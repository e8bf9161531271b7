"""Withdrawals per user per minute: written as Faust's withdrawals example writes it
(``import faust``, an isodates Record, a tumbling table relative to a field of the value,
``expires=`` and no grace, as on Faust) and run unchanged by streamlog."""

from datetime import datetime, timedelta

import faust


class Withdrawal(faust.Record, isodates=True, serializer="json"):
    user: str
    country: str
    amount: float
    date: datetime = None


app = faust.App("withdrawals", topic_partitions=1)
withdrawals_topic = app.topic("withdrawals", key_type=str, value_type=Withdrawal)
totals_topic = app.topic("user-totals", value_type=str)

user_to_total = (
    app.Table("user_to_total", default=float)
    .tumbling(timedelta(minutes=1), expires=timedelta(hours=1))
    .relative_to_field(Withdrawal.date)
)


@app.agent(withdrawals_topic)
async def track_user_withdrawal(withdrawals):
    async for withdrawal in withdrawals:
        user_to_total[withdrawal.user] += withdrawal.amount
        total = user_to_total[withdrawal.user].value()
        await totals_topic.send(value=f"{withdrawal.user} {withdrawal.date:%H:%M} {total:.2f}")
