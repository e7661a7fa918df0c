"""Issue 14, point 2: image, audio and file input, fetched safely.

The local web serves a real PNG and WAV (and media that must be refused); the
model servers are the fakes in Gemini's and OpenAI's wire formats, reached
through litellm's real translation. ``GROUNDING_ALLOW_PRIVATE_NETWORKS`` is on
for the test session (the fakes live on 127.0.0.1); tests of the guard turn
it off, which makes every loopback URL a private address to refuse.
"""
from __future__ import annotations

import asyncio
import base64

import openai
import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion

import grounding
from grounding.errors import InvalidRequestError
from grounding.media import InputMedia, collect_parts, prepare_media
from grounding.target import Target
from providers.models import DEFAULT_PROFILE
from tests.fakes.live_server import serve_config
from tests.fakes.media import data_uri, png, wav
from tests.fakes.web import PICTURE, TONE
from tests.test_loop import chat_requests, check_openai_shape

GEMINI = "gemini/gemini-2.5-flash"


def with_image(url, text="What is in this picture?"):
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]


def with_audio(data, fmt="wav"):
    return [{"role": "user", "content": [{"type": "text", "text": "Transcribe this."},
                                         {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}]}]


def ask_gemini(fake_native, messages, **kw):
    return grounding.completion(model=GEMINI, api_base=fake_native.api_base("gemini"), api_key="k",
                                messages=messages, **kw)


def gemini_parts(fake_native):
    [body] = [r.json for r in fake_native.requests if "enerateContent" in r.path]
    return [p for c in body["contents"] for p in c["parts"]]


def media_requests(fake_web):
    return [r for r in fake_web.requests if r.path.startswith("/media/")]


# --- Gemini needs the bytes: fetched here, sent as data --------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_image_url_reaches_gemini_as_inline_data_fetched_safely(fake_native, fake_web, stream):
    result = ask_gemini(fake_native, with_image(f"{fake_web.url}/media/picture.png"), stream=stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in result if c.choices)
    else:
        check_openai_shape(result)
    inline = [p["inline_data"] if "inline_data" in p else p["inlineData"] for p in gemini_parts(fake_native)
              if "inline_data" in p or "inlineData" in p]
    assert [(i["mime_type"] if "mime_type" in i else i["mimeType"]) for i in inline] == ["image/png"]
    assert base64.b64decode(inline[0]["data"]) == PICTURE
    [fetch] = media_requests(fake_web)  # once, by this library's fetcher (not by litellm)
    assert fetch.headers["user-agent"].startswith("grounding/")
    assert "image/png" in fetch.headers["accept"]


def test_an_image_without_a_content_type_is_identified_by_its_bytes(fake_native, fake_web):
    ask_gemini(fake_native, with_image(f"{fake_web.url}/media/untyped"))
    assert any(base64.b64decode((p.get("inline_data") or p.get("inlineData") or {}).get("data", "")) == PICTURE
               for p in gemini_parts(fake_native))


@pytest.mark.parametrize(("path", "env", "words"), [
    ("/media/picture.png", {"GROUNDING_ALLOW_PRIVATE_NETWORKS": "0"}, "blocked: 127.0.0.1 is a loopback address"),
    ("/media/huge.png", {"GROUNDING_MEDIA_MAX_BYTES": "1000000"}, "too large: over 1,000,000 bytes"),
    ("/media/huge.png?chunked=1", {"GROUNDING_MEDIA_MAX_BYTES": "1000000"}, "too large"),
    ("/media/drawing.svg", {}, "unsupported content type image/svg+xml"),
    ("/article", {}, "unsupported content type text/html"),
    ("/status/404", {}, "HTTP 404"),
    ("/media/tone.wav", {}, "unsupported content type audio/wav"),
])
def test_a_refused_image_is_a_400_naming_the_part(fake_native, fake_web, monkeypatch, path, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidRequestError) as err:
        ask_gemini(fake_native, with_image(f"{fake_web.url}{path}"))
    assert err.value.param == "messages[0].content[1]" and err.value.status_code == 400
    assert words in err.value.message and err.value.code == "invalid_media"
    assert not [r for r in fake_native.requests if "enerateContent" in r.path]  # the model was never called
    if "ALLOW_PRIVATE" in str(env):
        assert media_requests(fake_web) == []  # nobody fetched it: neither this library nor litellm


@pytest.mark.parametrize(("url", "words"), [
    ("data:image/png;base64,not base64!", "not valid base64"),
    (data_uri(b"<svg/>", "image/svg+xml"), "type image/svg+xml"),
    ("data:image/png,rawbytes", "not a base64 data URI"),
    ("ftp://example.com/x.png", "http(s) URL or a data: URI"),
    ("file:///etc/passwd", "http(s) URL or a data: URI"),
    ("", "needs a URL"),
])
def test_bad_inline_or_unfetchable_urls(fake_native, url, words):
    with pytest.raises(InvalidRequestError) as err:
        ask_gemini(fake_native, with_image(url))
    assert err.value.param == "messages[0].content[1]" and words in err.value.message


def test_an_oversized_data_uri(fake_native, monkeypatch):
    monkeypatch.setenv("GROUNDING_MEDIA_MAX_BYTES", "2000")
    big = data_uri(png(200, 200) + b"\0" * 3000, "image/png")
    with pytest.raises(InvalidRequestError) as err:
        ask_gemini(fake_native, [{"role": "system", "content": "hi"}] + with_image(big))
    assert err.value.param == "messages[1].content[1]" and "too large" in err.value.message


def test_a_valid_data_uri_goes_through_untouched(fake_native, fake_web):
    ask_gemini(fake_native, with_image(data_uri(PICTURE, "image/png")))
    assert media_requests(fake_web) == []
    assert any((p.get("inline_data") or p.get("inlineData")) for p in gemini_parts(fake_native))


# --- providers that fetch URLs themselves get the URL ---------------------------------------------

def test_openai_gets_the_url_itself_on_its_own_endpoint(fake_llm, fake_web, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_llm.url}/v1")  # the provider's endpoint, not an api_base
    url = f"{fake_web.url}/media/picture.png"
    grounding.completion(model="openai/fake-direct", api_key="k", messages=with_image(url))
    [body] = chat_requests(fake_llm)
    assert body["messages"][0]["content"][1]["image_url"]["url"] == url
    assert media_requests(fake_web) == []  # OpenAI fetches it on its side


def test_a_custom_endpoint_gets_the_bytes(fake_llm, fake_web):
    # A self-hosted OpenAI-compatible server would fetch the URL from inside its own network.
    grounding.completion(model="openai/fake-direct", api_base=f"{fake_llm.url}/v1", api_key="k",
                         messages=with_image(f"{fake_web.url}/media/picture.png"))
    [body] = chat_requests(fake_llm)
    image = body["messages"][0]["content"][1]["image_url"]
    assert image == {"url": data_uri(PICTURE, "image/png"), "detail": "low"}


def test_each_fallback_gets_what_it_takes():
    openai_ = Target(name="openai/gpt-4.1-mini", litellm_model="openai/gpt-4.1-mini", profile=DEFAULT_PROFILE)
    gemini_ = Target(name=GEMINI, litellm_model=GEMINI, profile=DEFAULT_PROFILE)
    claude = Target(name="anthropic/claude", litellm_model="anthropic/claude-sonnet-4-5", profile=DEFAULT_PROFILE)
    messages = with_image("https://example.com/a.png") + with_image("http://example.com/b.png")
    # as prepare_media builds it for these targets, without the network: both URLs fetched as data
    media = InputMedia(parts=collect_parts(messages, 10_000),
                       fetched={"https://example.com/a.png": "data:image/png;base64,QQ==",
                                "http://example.com/b.png": "data:image/png;base64,Qg=="})

    def urls(target):
        return [msg["content"][1]["image_url"]["url"] for msg in media.messages_for(target, messages)]

    assert urls(openai_) == ["https://example.com/a.png", "http://example.com/b.png"]
    assert urls(claude) == ["https://example.com/a.png", "data:image/png;base64,Qg=="]  # Anthropic: https only
    assert urls(gemini_) == ["data:image/png;base64,QQ==", "data:image/png;base64,Qg=="]
    assert messages[0]["content"][1]["image_url"]["url"] == "https://example.com/a.png"  # not mutated


def test_only_what_some_target_needs_is_fetched(fake_web):
    openai_ = Target(name="openai/gpt-4.1-mini", litellm_model="openai/gpt-4.1-mini", profile=DEFAULT_PROFILE)
    media = asyncio.run(prepare_media(with_image(f"{fake_web.url}/media/picture.png"), [openai_]))
    assert media.fetched == {} and media_requests(fake_web) == []


# --- audio -----------------------------------------------------------------------------------------

def test_audio_reaches_a_model_that_takes_it(fake_native):
    ask_gemini(fake_native, with_audio(base64.b64encode(TONE).decode()))
    inline = [p.get("inline_data") or p.get("inlineData") for p in gemini_parts(fake_native)
              if p.get("inline_data") or p.get("inlineData")]
    assert len(inline) == 1 and base64.b64decode(inline[0]["data"]) == TONE
    assert (inline[0].get("mime_type") or inline[0].get("mimeType")) == "audio/wav"


def test_audio_from_a_url_is_fetched_safely(fake_native, fake_web):
    ask_gemini(fake_native, with_audio(f"{fake_web.url}/media/tone.wav"))
    inline = [p.get("inline_data") or p.get("inlineData") for p in gemini_parts(fake_native)
              if p.get("inline_data") or p.get("inlineData")]
    assert base64.b64decode(inline[0]["data"]) == TONE
    assert [r.path for r in media_requests(fake_web)] == ["/media/tone.wav"]


def test_audio_to_a_model_without_audio_input_is_refused(fake_llm):
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="openai/gpt-4.1-mini", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=with_audio(base64.b64encode(TONE).decode()))
    assert err.value.param == "messages[0].content[1]" and "does not take audio input" in err.value.message
    assert err.value.code == "unsupported_modality" and fake_llm.chat_requests() == []


def test_images_to_a_model_without_vision_are_refused(fake_llm, fake_web):
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="openai/gpt-3.5-turbo", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=with_image(f"{fake_web.url}/media/picture.png"))
    assert err.value.param == "messages[0].content[1]" and "does not take images" in err.value.message
    assert media_requests(fake_web) == []
    with pytest.raises(InvalidRequestError) as err:  # nor the embedded model (refused before it is started)
        grounding.completion(model="local", messages=with_audio(base64.b64encode(TONE).decode()))
    assert err.value.param == "messages[0].content[1]" and "does not take audio" in err.value.message


@pytest.mark.parametrize(("audio", "words"), [
    ({"data": base64.b64encode(TONE).decode(), "format": "midi"}, "input_audio.format must be one of"),
    ({"data": "%%%", "format": "wav"}, "not valid base64"),
    ({"format": "wav"}, "must be base64 audio"),
])
def test_bad_audio(fake_native, audio, words):
    with pytest.raises(InvalidRequestError) as err:
        ask_gemini(fake_native, [{"role": "user", "content": [{"type": "input_audio", "input_audio": audio}]}])
    assert err.value.param == "messages[0].content[0]" and words in err.value.message


# --- files ------------------------------------------------------------------------------------------

def test_a_file_url_is_fetched_here_not_by_litellm(fake_llm, fake_web):
    url = f"{fake_web.url}/pdf"
    grounding.completion(model="openai/fake-direct", api_base=f"{fake_llm.url}/v1", api_key="k", messages=[
        {"role": "user", "content": [{"type": "text", "text": "Summarize."},
                                     {"type": "file", "file": {"file_id": url}}]}])
    [body] = chat_requests(fake_llm)
    file = body["messages"][0]["content"][1]["file"]
    assert file["file_data"].startswith("data:application/pdf;base64,") and file["filename"] == "pdf"
    assert "file_id" not in file
    assert [r.headers["user-agent"][:10] for r in fake_web.requests if r.path == "/pdf"] == ["grounding/"]


# --- through the server, with the official openai SDK ------------------------------------------------

def test_input_media_through_the_server(fake_native, fake_web, monkeypatch):
    config = {"providers": {"gem": {"litellm_provider": "gemini", "api_base": fake_native.api_base("gemini"),
                                    "api_key": "g-key"}},
              "models": [{"id": "gemini-2.5-flash", "provider": "gem"}]}
    url = f"{fake_web.url}/media/picture.png"
    with serve_config(config) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60) as client:
        r = client.chat.completions.create(model="gem/gemini-2.5-flash", messages=with_image(url))
        assert isinstance(r, OpenAIChatCompletion) and r.choices[0].message.content
        assert any((p.get("inline_data") or p.get("inlineData")) for p in gemini_parts(fake_native))
        r = client.chat.completions.create(model="gem/gemini-2.5-flash", messages=with_audio(
            base64.b64encode(wav(0.05)).decode()))
        assert isinstance(r, OpenAIChatCompletion)
        monkeypatch.setenv("GROUNDING_ALLOW_PRIVATE_NETWORKS", "0")
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="gem/gemini-2.5-flash", messages=with_image(url), stream=True)
        assert err.value.body["param"] == "messages[0].content[1]" and "blocked" in err.value.body["message"]
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="openai/gpt-4.1-mini", messages=with_audio("AAAA"))
        assert err.value.body["param"] == "messages[0].content[1]"
