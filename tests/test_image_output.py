"""Issue 14, point 1: image output (``modalities`` + ``image_config``), streamed and not.

Two wire formats, each through litellm's real translation on 127.0.0.1: the
OpenAI-compatible one (``fake-painter`` on the fake model server answers with
OpenRouter's ``message.images``, what litellm reads from OpenAI-compatible
providers) and Gemini's ``generateContent`` (``inlineData`` image parts; the
fake native-search server also speaks it). The images are real PNGs whose
size follows ``image_config.aspect_ratio``, so a test can see the setting
arrive.
"""
from __future__ import annotations

import base64

import litellm
import openai
import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

import grounding
from grounding.errors import InvalidRequestError
from grounding.request import parse_request
from grounding.response import Metadata
from grounding.routing.select import needs_of
from tests.fakes.live_server import serve_config
from tests.fakes.media import IMAGE_TOKENS, png_size
from tests.test_loop import chat_requests, check_openai_shape

DRAW = [{"role": "user", "content": "nutrition trends for fall"}]
IMAGE = {"modalities": ["image", "text"], "image_config": {"aspect_ratio": "16:9"}}


def decode(image) -> tuple[int, int]:
    url = image.image_url.url if hasattr(image, "image_url") else image["image_url"]["url"]
    head, _, data = url.partition(",")
    assert head == "data:image/png;base64"
    return png_size(base64.b64decode(data))


def painter(fake_llm, *, stream=False, **kw):
    return grounding.completion(model="openai/fake-painter", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                messages=DRAW, stream=stream, **(IMAGE | kw))


def gemini(fake_native, model="gemini/gemini-2.5-flash-image", *, stream=False, **kw):
    return grounding.completion(model=model, api_base=fake_native.api_base("gemini"), api_key="k",
                                messages=[{"role": "user", "content": "Draw the Spree at night"}], stream=stream,
                                **(IMAGE | kw))


def streamed(chunks):
    """(content, images, last metadata) of a list of chunks, each checked against openai's type."""
    content, images = "", []
    for c in chunks:
        data = c.to_dict()
        data.pop("metadata", None)
        OpenAIChunk.model_validate(data)
        for choice in c.choices:
            content += choice.delta.content or ""
            images += choice.delta.images or []
    return content, images, chunks[-1].metadata


# --- the OpenAI-compatible wire ----------------------------------------------------------

def test_images_come_back_in_message_images(fake_llm):
    result = painter(fake_llm)
    data = check_openai_shape(result)
    [image] = data["choices"][0]["message"]["images"]
    assert set(image) == {"type", "image_url"} and image["type"] == "image_url"
    assert decode(image) == (64, 36)  # 16:9 arrived
    [body] = chat_requests(fake_llm)
    assert body["modalities"] == ["image", "text"] and body["image_config"] == {"aspect_ratio": "16:9"}
    assert result.usage.completion_tokens_details == {"image_tokens": IMAGE_TOKENS}
    assert result.usage.completion_tokens > IMAGE_TOKENS


def test_images_stream_on_the_last_content_chunk(fake_llm):
    chunks = list(painter(fake_llm, stream=True, image_config={"aspect_ratio": "1:1"}))
    content, images, _ = streamed(chunks)
    assert content and len(images) == 1 and decode(images[0]) == (36, 36)
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert last.choices[0].delta.images == images


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_grounded_answer_with_an_image(fake_llm, fake_search, fake_web, stream):
    result = painter(fake_llm, stream=stream, web_search={"engine": "searxng"})
    if stream:
        content, images, meta = streamed(list(result))
    else:
        check_openai_shape(result)
        content, images, meta = result.choices[0].message.content, result.choices[0].message.images, result.metadata
    search_turn, answer_turn = chat_requests(fake_llm)
    assert "modalities" not in search_turn and "image_config" not in search_turn  # tools turn: text only
    assert answer_turn["modalities"] == ["image", "text"] and answer_turn["image_config"] == {"aspect_ratio": "16:9"}
    assert len(images) == 1 and decode(images[0]) == (64, 36)
    assert "[1]" in content and meta.citations.annotations >= 1


def test_a_search_turn_that_answers_at_once_is_asked_again_for_the_image(fake_llm, fake_search, fake_web):
    # The model answers on the search turn (which carries no modalities): the answer turn is still made.
    result = grounding.completion(model="openai/fake-painter-direct", api_base=f"{fake_llm.url}/v1", api_key="k",
                                  messages=DRAW, web_search={"engine": "searxng"}, **IMAGE)
    search_turn, answer_turn = chat_requests(fake_llm)
    assert "modalities" not in search_turn and answer_turn["modalities"] == ["image", "text"]
    assert result.choices[0].message.images and result.choices[0].message.content == "I know this."


# --- Gemini's wire ---------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_image_model(fake_native, stream):
    result = gemini(fake_native, stream=stream)
    if stream:
        content, images, meta = streamed(list(result))
    else:
        check_openai_shape(result)
        content, images, meta = result.choices[0].message.content, result.choices[0].message.images, result.metadata
    [body] = [r.json for r in fake_native.requests if "enerateContent" in r.path]
    assert body["generationConfig"]["responseModalities"] == ["IMAGE", "TEXT"]
    # litellm sends image_config in generationConfig under its proto field names, which Gemini's JSON takes
    assert body["generationConfig"]["image_config"] == {"aspect_ratio": "16:9"}
    assert content and len(images) == 1 and decode(images[0]) == (64, 36)
    # priced as litellm prices Gemini's image tokens (USD per image token from its model map)
    per_image = litellm.model_cost["gemini/gemini-2.5-flash-image"]["output_cost_per_image_token"] * IMAGE_TOKENS
    assert meta.cost_usd is not None and meta.cost_usd > per_image


def test_gemini_native_search_with_an_image(fake_native):
    result = gemini(fake_native, "gemini/gemini-3-pro-image-preview", web_search_options={})
    check_openai_shape(result)
    msg = result.choices[0].message
    assert msg.images and msg.annotations and result.metadata.mode == "native"
    assert result.usage.completion_tokens_details == {"image_tokens": IMAGE_TOKENS}


# --- what cannot be served: clear 400s before any call -------------------------------------------

def test_a_text_only_model_is_refused(fake_llm):
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="openai/gpt-4.1-mini", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=DRAW, modalities=["image", "text"])
    assert err.value.param == "modalities" and "cannot output images" in err.value.message
    assert err.value.code == "unsupported_modality" and fake_llm.chat_requests() == []


def test_an_image_model_that_cannot_call_tools_cannot_run_the_tool_loop(fake_native, monkeypatch):
    monkeypatch.setenv("SEARXNG_API_BASE", "http://127.0.0.1:9")  # the engine is configured: the model is the problem
    with pytest.raises(InvalidRequestError) as err:
        gemini(fake_native, web_search={"engine": "searxng"})
    assert err.value.param == "web_search" and err.value.code == "unsupported_combination"
    assert "web_search_options" in err.value.message and fake_native.requests == []


def test_an_unknown_model_answers_for_itself(fake_llm):
    # Not in litellm's map: let through; the provider's own 400 comes back as a clear error.
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="openai/fake-direct", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=DRAW, modalities=["image", "text"])
    assert "does not support image output" in err.value.message and err.value.status_code == 400


def test_fallbacks_that_cannot_draw_are_skipped(fake_llm):
    result = painter(fake_llm, models=["openai/gpt-4.1-mini"])
    assert result.choices[0].message.images
    assert any("fallback openai/gpt-4.1-mini was skipped" in w for w in result.metadata.warnings)


@pytest.mark.parametrize(("kw", "param", "words"), [
    ({"image_config": {"aspect_ratio": "16:9"}}, "image_config", "needs 'image' in modalities"),
    ({"modalities": ["image"], "image_config": {"aspect_ratio": "wide"}}, "image_config", "aspect_ratio"),
    ({"modalities": ["image"], "image_config": {"image_size": "8K"}}, "image_config", "image_size"),
    ({"modalities": ["video"]}, "modalities[0]", "'image'"),
    ({"modalities": ["text", "audio"]}, "modalities", "audio output"),
])
def test_bad_image_requests(fake_llm, kw, param, words):
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="openai/fake-painter", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=DRAW, **kw)
    assert err.value.param == param and words in err.value.message


def test_the_local_model_cannot_draw():
    with pytest.raises(InvalidRequestError) as err:
        grounding.completion(model="local", messages=DRAW, modalities=["image", "text"])
    assert err.value.param == "modalities" and "model local cannot output images" in err.value.message


def test_auto_needs_an_image_model():
    req = parse_request({"model": "auto", "messages": DRAW, "modalities": ["image", "text"]})
    assert needs_of(req).image_output and not needs_of(req).audio_input


# --- through the server, with the official openai SDK ----------------------------------------------

def test_images_through_the_server(fake_llm, fake_native):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{fake_llm.url}/v1",
                                      "api_key": "sk-up"},
                            "gem": {"litellm_provider": "gemini", "api_base": fake_native.api_base("gemini"),
                                    "api_key": "g-key"}},
              "models": [{"id": "fake-painter", "provider": "alpha", "capabilities": {"image_output": True}},
                         {"id": "gemini-2.5-flash-image", "provider": "gem"}]}
    with serve_config(config) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60) as client:
        for model in ("alpha/fake-painter", "gem/gemini-2.5-flash-image"):
            r = client.chat.completions.create(model=model, messages=DRAW, modalities=["image", "text"],
                                               extra_body={"image_config": {"aspect_ratio": "3:2"}})
            assert isinstance(r, OpenAIChatCompletion)
            [image] = r.choices[0].message.images  # type: ignore[attr-defined]
            assert decode(image) == (54, 36)
            assert r.usage.completion_tokens_details.image_tokens == IMAGE_TOKENS  # type: ignore[union-attr]
            Metadata.model_validate(r.metadata)
            stream = client.chat.completions.create(model=model, messages=DRAW, modalities=["image", "text"],
                                                    stream=True, extra_body={"image_config": {"aspect_ratio": "1:1"}})
            chunks = list(stream)
            assert all(isinstance(c, OpenAIChunk) for c in chunks)
            images = [i for c in chunks for ch in c.choices for i in (getattr(ch.delta, "images", None) or [])]
            assert len(images) == 1 and decode(images[0]) == (36, 36)
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="gem/gemini-2.5-flash-image", messages=DRAW,
                                           modalities=["image", "text"], extra_body={"web_search": {}})
        assert err.value.body["param"] == "web_search" and err.value.body["code"] == "unsupported_combination"
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="openai/gpt-4.1-mini", messages=DRAW, modalities=["image", "text"])
        assert err.value.body["param"] == "modalities"
