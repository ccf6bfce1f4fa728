"""An aiokafka consumer that awaits 20 ms of work per message; it falls behind its topic."""

import asyncio
import json
import os

from aiokafka import AIOKafkaConsumer


async def handle(event: dict) -> None:
    await asyncio.sleep(0.02)  # call the e-mail service


async def main() -> None:
    consumer = AIOKafkaConsumer(
        os.environ["KAFKA_TOPIC"], bootstrap_servers=os.environ["KAFKA_BOOTSTRAP"], group_id=os.environ["KAFKA_GROUP"], auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async for msg in consumer:
            await handle(json.loads(msg.value))
    finally:
        await consumer.stop()


asyncio.run(main())
