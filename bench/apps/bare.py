"""A bare FastAPI endpoint: the baseline the shared stack is compared with."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping():
    return {"ok": True}
