"""Chat's routes declare the statuses and codes they answer (shared.errors.documented)."""


def responses(app, path: str, method: str) -> dict:
    return app.openapi()["paths"][path][method]["responses"]


async def test_routes_document_their_own_errors(chat):
    talk = responses(chat.app, "/talk_with", "post")
    assert {"402", "404", "422", "503"} <= set(talk)
    assert "`INSUFFICIENT_QUOTA`" in talk["402"]["description"] and "`INSUFFICIENT_TIER`" in talk["402"]["description"]
    assert "`CONVERSATION_NOT_FOUND`" in talk["404"]["description"]
    assert "`LLM_UNAVAILABLE`" in talk["503"]["description"]
    assert "text/event-stream" in talk["200"]["content"]
    group = responses(chat.app, "/group_chat", "post")
    assert "`INSUFFICIENT_QUOTA`" in group["402"]["description"] and "`NO_CHARACTERS`" in group["422"]["description"]
    transcribe = responses(chat.app, "/voice/transcribe", "post")
    assert "`UNSUPPORTED_AUDIO_TYPE`" in transcribe["415"]["description"]
    assert "`AUDIO_TOO_LARGE`" in transcribe["413"]["description"]
    for path, method in (
        ("/conversations/{conversation_id}", "delete"),
        ("/conversations/{conversation_id}/share", "post"),
    ):
        assert "`CONVERSATION_NOT_FOUND`" in responses(chat.app, path, method)["404"]["description"]
    assert "`MESSAGE_NOT_FOUND`" in responses(chat.app, "/messages/{message_id}/pin", "post")["404"]["description"]


async def test_speak_is_documented_as_audio(chat, new_user):
    speak = responses(chat.app, "/voice/speak", "post")
    assert set(speak["200"]["content"]) == {"audio/mpeg", "audio/wav", "audio/flac"}
    r = await chat.post("/voice/speak", json={"text": "hello"}, headers=new_user().headers)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
