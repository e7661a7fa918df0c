"""The model catalog: what each deployment costs, holds and can do.

A *deployment* is one model served by one provider (:class:`~.types.ModelInfo`,
named ``provider/model``). Three sources feed it, later ones winning:

1. litellm's model map (``litellm.model_cost``): prices, context window and
   capabilities (``supports_function_calling`` -> ``tools``,
   ``supports_vision`` -> ``vision``, ``supports_web_search`` ->
   ``native_search``, ``supports_response_schema`` -> ``json_schema``,
   ``supports_reasoning`` -> ``reasoning``, ``supports_audio_input`` ->
   ``audio_input``, ``supported_output_modalities`` with ``image`` ->
   ``image_output``). Only ``chat`` and ``responses`` entries count, and the
   ``image_generation`` entries of models that answer chat completions with
   text and images (Gemini's image models); prices become USD per **million**
   tokens.
2. the scores file (intelligence, coding, math; 0-100, keyed by plain model
   id): the shipped ``scores.yaml`` next to this module, or the config's
   ``scores_file``, which replaces it;
3. the config file's ``models`` entries (:class:`~grounding.config.ModelConfig`):
   prices, context window, capabilities and scores set there override the two
   above for the deployments the entry names.

Naming. The *plain id* of a model is its name without provider or
organisation prefixes, i.e. the last ``/``-separated segment:
``groq/openai/gpt-oss-120b`` and ``fireworks_ai/accounts/fireworks/models/gpt-oss-120b``
are both ``gpt-oss-120b``. A reference is either

* ``provider/model``: exactly one deployment. ``provider`` is a provider of the
  config file or a litellm provider (a few common aliases are accepted, e.g.
  ``google-ai-studio`` -> ``gemini``, ``together`` -> ``together_ai``). A model
  the map does not know is still returned, with unknown prices and
  capabilities, except ``tools``, assumed ``True``: litellm can pass tools to
  any chat model, and a model that cannot use them fails loudly at request
  time rather than being silently excluded from ``web_search``;
* a plain id: every deployment serving it (config entries first, then the
  model's maker's own API, then other hosts, then gateways and clouds such as
  openrouter, azure, bedrock, vertex_ai).

A config provider (``providers:`` in the config) serving a model litellm's map
knows (by its ``litellm_model``, else by its plain id) starts from that
model's prices and capabilities: a proxy is taken to cost and do what the
model does elsewhere, until the config says otherwise. A config ``models``
entry without ``provider`` (and without a ``provider/`` prefix) applies to
every provider of that plain id.

Keys. ``ModelInfo.available`` says whether the deployment's key is present:
for a config provider, its ``api_key`` / ``api_key_env`` (a provider with an
``api_base`` and no key settings is taken as keyless, e.g. a local server);
for a litellm provider, its standard environment variable(s) (a small table
for common providers, else ``<PROVIDER>_API_KEY``; see
:func:`provider_key_status`). Availability is re-read from the environment
on every call; the rest is computed once per :class:`Catalog`.
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import Config, ModelConfig, ProviderConfig, get_config
from ..errors import InvalidRequestError
from .types import CAPABILITIES, ModelInfo

__all__ = ["Catalog", "get_catalog", "reset", "load_scores", "canonical_provider", "plain_id",
           "provider_key_status", "known_key_rules", "SCORE_KEYS", "PROVIDER_ALIASES"]

#: The score columns of the scores file.
SCORE_KEYS = ("intelligence", "coding", "math")

#: Other names users write for litellm providers.
PROVIDER_ALIASES = {
    "google-ai-studio": "gemini",
    "google-vertex": "vertex_ai",
    "vertex": "vertex_ai",
    "together": "together_ai",
    "fireworks": "fireworks_ai",
    "x-ai": "xai",
    "amazon-bedrock": "bedrock",
    "aws-bedrock": "bedrock",
    "azure-openai": "azure",
    "mistralai-api": "mistral",
}

# litellm_provider values in the map that are not provider prefixes litellm accepts.
#: Resolved references kept per catalog before the cache starts over.
_MAX_CACHED = 4096

_MAP_PROVIDER = {"bedrock_converse": "bedrock", "amazon_nova": "amazon_nova"}

#: Environment variables holding each common provider's key: any one of the
#: alternatives, each a tuple of variables that must all be set.
_PROVIDER_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openai": (("OPENAI_API_KEY",),),
    "anthropic": (("ANTHROPIC_API_KEY",), ("ANTHROPIC_AUTH_TOKEN",)),
    "gemini": (("GEMINI_API_KEY",), ("GOOGLE_API_KEY",)),
    "vertex_ai": (("VERTEXAI_PROJECT", "VERTEXAI_LOCATION"), ("GOOGLE_APPLICATION_CREDENTIALS",)),
    "groq": (("GROQ_API_KEY",),),
    "xai": (("XAI_API_KEY",),),
    "mistral": (("MISTRAL_API_KEY",),),
    "codestral": (("CODESTRAL_API_KEY",),),
    "deepseek": (("DEEPSEEK_API_KEY",),),
    "perplexity": (("PERPLEXITYAI_API_KEY",), ("PERPLEXITY_API_KEY",)),
    "together_ai": (("TOGETHERAI_API_KEY",), ("TOGETHER_API_KEY",), ("TOGETHER_AI_API_KEY",), ("TOGETHER_AI_TOKEN",)),
    "fireworks_ai": (("FIREWORKS_AI_API_KEY",), ("FIREWORKS_API_KEY",), ("FIREWORKSAI_API_KEY",),
                     ("FIREWORKS_AI_TOKEN",)),
    "cerebras": (("CEREBRAS_API_KEY",),),
    "sambanova": (("SAMBANOVA_API_KEY",),),
    "openrouter": (("OPENROUTER_API_KEY",),),
    "deepinfra": (("DEEPINFRA_API_KEY",),),
    "azure": (("AZURE_API_KEY", "AZURE_API_BASE"),),
    "azure_ai": (("AZURE_AI_API_KEY", "AZURE_AI_API_BASE"),),
    "bedrock": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",), ("AWS_ROLE_ARN",),
                ("AWS_WEB_IDENTITY_TOKEN_FILE",), ("AWS_BEARER_TOKEN_BEDROCK",)),
    "moonshot": (("MOONSHOT_API_KEY",),),
    "cohere": (("COHERE_API_KEY",),),
    "cohere_chat": (("COHERE_API_KEY",),),
    "nebius": (("NEBIUS_API_KEY",),),
    "novita": (("NOVITA_API_KEY",),),
    "huggingface": (("HUGGINGFACE_API_KEY",), ("HF_TOKEN",)),
    "nvidia_nim": (("NVIDIA_NIM_API_KEY",),),
    "zai": (("ZAI_API_KEY",),),
    "dashscope": (("DASHSCOPE_API_KEY",),),
    "cloudflare": (("CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID"),),
    "vercel_ai_gateway": (("VERCEL_AI_GATEWAY_API_KEY",),),
}
#: Providers that run without a key (local servers).
_KEYLESS = frozenset({"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "llamafile", "vllm", "lemonade"})

_CAPABILITY_FLAGS = ("supports_function_calling", "tools"), ("supports_vision", "vision"), \
    ("supports_web_search", "native_search"), ("supports_response_schema", "json_schema"), \
    ("supports_reasoning", "reasoning"), ("supports_audio_input", "audio_input")


def plain_id(name: str) -> str:
    """A model name without provider or organisation prefixes (the last ``/`` segment)."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def canonical_provider(name: str) -> str:
    """A provider name as this catalog spells it (aliases resolved; config names unchanged)."""
    return PROVIDER_ALIASES.get(name, PROVIDER_ALIASES.get(name.lower(), name))


def _map_provider(value: str) -> str:
    if value.startswith("vertex_ai"):
        return "vertex_ai"
    return _MAP_PROVIDER.get(value, value)


#: Who makes which models (their own API is listed first for a plain id).
_MAKERS = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"), "openai"),
    (("claude-",), "anthropic"),
    (("gemini-", "gemma-"), "gemini"),
    (("grok-",), "xai"),
    (("mistral-", "magistral-", "codestral-", "devstral-", "ministral-", "pixtral-", "open-mistral-"), "mistral"),
    (("deepseek-",), "deepseek"),
    (("sonar",), "perplexity"),
    (("kimi-", "moonshot-"), "moonshot"),
)
#: Gateways and resellers: listed last for a plain id (they serve everyone's models).
_GATEWAYS = frozenset({"openrouter", "vercel_ai_gateway", "aihubmix", "github_copilot", "chatgpt", "perplexity",
                       "replicate", "azure", "azure_ai", "bedrock", "bedrock_mantle", "vertex_ai", "databricks",
                       "snowflake", "oci", "watsonx", "cloudflare", "sagemaker"})


def _provider_rank(provider: str, plain: str) -> int:
    """0 for the model's maker, 2 for gateways and clouds, 1 for the other hosts."""
    for prefixes, maker in _MAKERS:
        if plain.startswith(prefixes):
            if provider == maker:
                return 0
            break
    return 2 if provider in _GATEWAYS else 1


def _per_million(value: Any) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return round(float(value) * 1_000_000, 6)


def load_scores(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, float]]:
    """Read a scores file: ``{plain model id: {intelligence, coding, math}}`` (0-100 each).

    ``None`` reads the shipped ``scores.yaml``. Raises :class:`InvalidRequestError`
    (``param="scores_file"``) for a file that cannot be read or has bad values.
    """
    import yaml

    where = str(path) if path is not None else "grounding/routing/scores.yaml"
    try:
        if path is None:
            text = resources.files(__package__).joinpath("scores.yaml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read scores file {where}: {exc.strerror or exc}",
                                  param="scores_file") from None
    except yaml.YAMLError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidRequestError(f"scores file {where} is not valid YAML: {first}", param="scores_file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequestError(f"scores file {where} must map model ids to scores", param="scores_file")
    scores: dict[str, dict[str, float]] = {}
    for model, row in data.items():
        if not isinstance(row, dict):
            raise InvalidRequestError(f"scores file {where}: {model}: expected a mapping of scores",
                                      param="scores_file")
        clean: dict[str, float] = {}
        for key, value in row.items():
            if key not in SCORE_KEYS:
                raise InvalidRequestError(f"scores file {where}: {model}: unknown score {key!r}; "
                                          f"use {', '.join(SCORE_KEYS)}", param="scores_file")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise InvalidRequestError(f"scores file {where}: {model}.{key} must be a number from 0 to 100",
                                          param="scores_file")
            clean[key] = float(value)
        scores[str(model)] = clean
    return scores


class Catalog:
    """Deployments known from litellm's model map, the scores file and ``config``.

    Built lazily: nothing (not even litellm) is loaded until the first
    :meth:`resolve` or :meth:`pool`. Results are cached per catalog; only key
    availability is re-checked on each call. Thread-safe.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self._lock = threading.RLock()
        self._scores: dict[str, dict[str, float]] | None = None
        self._map: dict[str, dict[str, Any]] | None = None
        #: plain id -> [(provider, map key)], first-party first.
        self._index: dict[str, list[tuple[str, str]]] | None = None
        #: (provider, plain id) -> map key.
        self._by_dep: dict[tuple[str, str], str] = {}
        self._litellm_providers: frozenset[str] = frozenset()
        self._deployments: dict[tuple[str, str], ModelInfo] = {}
        self._resolved: dict[str, list[ModelInfo]] = {}
        self._pool: list[ModelInfo] | None = None
        # config entries: by deployment, and plain-id entries that apply to every provider
        self._entries: dict[tuple[str, str], ModelConfig] = {}
        self._entry_names: dict[tuple[str, str], str] = {}
        self._any: dict[str, ModelConfig] = {}
        self._entry_order: list[tuple[ModelConfig, str | None, str]] = []
        self._prepared = False

    # ------------------------------------------------------------------ public

    def resolve(self, ref: str) -> list[ModelInfo]:
        """The deployments ``ref`` names: one for ``provider/model``, all that serve a plain id, ``[]`` if unknown.

        Deployments whose key is missing are included, with ``available=False``.
        """
        ref = (ref or "").strip()
        if not ref:
            return []
        found = self._resolved.get(ref)
        if found is None:
            with self._lock:
                self._prepare()
                if len(self._resolved) >= _MAX_CACHED:  # refs come from requests: keep the cache bounded
                    self._resolved.clear()
                    self._deployments.clear()
                found = self._resolve(ref)
                self._resolved[ref] = found
        return self._refresh(found)

    def pool(self) -> list[ModelInfo]:
        """The default candidates of ``model="auto"``: deployments whose keys are present.

        The config's ``models`` when it lists any; otherwise every deployment
        of the models in the scores file.
        """
        if self._pool is None:
            with self._lock:
                self._prepare()
                if self._pool is None:
                    self._pool = self._build_pool()
        return [info for info in self._refresh(self._pool) if info.available]

    def scores(self) -> dict[str, dict[str, float]]:
        """The scores in use (the shipped file or the config's ``scores_file``), by plain model id."""
        if self._scores is None:
            path = self.config.path(self.config.scores_file) if self.config.scores_file else None
            self._scores = load_scores(path)
        return self._scores

    def is_provider(self, name: str) -> bool:
        """``name`` is a provider of the config file or of litellm (aliases included)."""
        with self._lock:
            self._prepare()
        return self._provider_name(name) is not None

    # ------------------------------------------------------------ preparation

    def _prepare(self) -> None:
        if self._prepared:
            return
        from ..llm import litellm

        lm = litellm()
        self._map = lm.model_cost
        self._litellm_providers = frozenset(getattr(p, "value", str(p)) for p in lm.provider_list)
        self.scores()
        self._build_index()
        self._read_config_models()
        self._prepared = True

    def _build_index(self) -> None:
        assert self._map is not None
        best: dict[tuple[str, str], tuple[tuple[int, int], int, str]] = {}
        for n, (key, entry) in enumerate(self._map.items()):
            if not isinstance(entry, dict) or entry.get("mode") not in ("chat", "responses"):
                continue
            raw = entry.get("litellm_provider")
            if not isinstance(raw, str):
                continue
            provider = _map_provider(raw)
            name = self._name_in_key(provider, key)
            plain = plain_id(name)
            # Duplicates (regional or org-prefixed keys): "<provider>/<id>" or "<id>" wins, then the shortest.
            rank = (0 if name == plain else 1, len(key))
            dep = (provider, plain)
            if dep not in best or rank < best[dep][0]:
                best[dep] = (rank, best[dep][1] if dep in best else n, key)
        index: dict[str, list[tuple[int, int, str, str]]] = {}
        for (provider, plain), (_, n, key) in best.items():
            self._by_dep[(provider, plain)] = key
            index.setdefault(plain, []).append((_provider_rank(provider, plain), n, provider, key))
        self._index = {plain: [(p, k) for _, _, p, k in sorted(rows)] for plain, rows in index.items()}

    def _read_config_models(self) -> None:
        plain_entries: list[tuple[int, ModelConfig, str]] = []
        for i, m in enumerate(self.config.models):
            provider: str | None = None
            name = m.id
            head, _, rest = m.id.partition("/")
            if m.provider:
                provider = m.provider if m.provider in self.config.providers else canonical_provider(m.provider)
                if provider not in self.config.providers and provider not in self._litellm_providers:
                    raise InvalidRequestError(
                        f"config: models[{i}] ({m.id}): unknown provider {m.provider!r} (neither in providers "
                        "nor a litellm provider)", param="config")
                if rest and self._provider_name(head) == provider:
                    name = rest
            elif rest and self._provider_name(head):
                provider, name = self._provider_name(head), rest
            if provider is None:
                plain_entries.append((i, m, plain_id(name)))
            else:
                self._entries[(provider, plain_id(name))] = m
                self._entry_names[(provider, plain_id(name))] = name
            self._entry_order.append((m, provider, name))
        for i, m, plain in plain_entries:
            if not (self._index or {}).get(plain) and not any(mid == plain for _, mid in self._entries):
                raise InvalidRequestError(
                    f"config: models[{i}] ({m.id}): litellm's model map does not know this model; "
                    "set its provider", param="config")
            self._any[plain] = m

    def _provider_name(self, name: str) -> str | None:
        if name in self.config.providers:
            return name
        canon = canonical_provider(name)
        return canon if canon in self._litellm_providers else None

    # -------------------------------------------------------------- resolving

    def _resolve(self, ref: str) -> list[ModelInfo]:
        head, _, rest = ref.partition("/")
        if rest:
            provider = self._provider_name(head)
            return [self._deployment(provider, rest)] if provider else []
        out: dict[str, ModelInfo] = {}
        for (provider, plain), name in self._entry_names.items():
            if plain == ref:
                info = self._deployment(provider, name)
                out.setdefault(info.id, info)
        for provider, key in (self._index or {}).get(ref, []):
            info = self._deployment(provider, self._name_in_key(provider, key))
            out.setdefault(info.id, info)
        return list(out.values())

    @staticmethod
    def _name_in_key(provider: str, key: str) -> str:
        head, _, rest = key.partition("/")
        return rest if rest and _map_provider(head.replace("-", "_")) == provider else key

    def _deployment(self, provider: str, name: str) -> ModelInfo:
        """The deployment ``provider/name`` (cached), built from the map, scores and config."""
        plain = plain_id(name)
        cached = self._deployments.get((provider, plain))
        if cached is not None:
            return cached
        assert self._map is not None
        cfg = self._entries.get((provider, plain))
        pc = self.config.providers.get(provider)
        entry: dict[str, Any] | None = None
        if pc is not None:
            litellm_model = cfg.litellm_model if cfg and cfg.litellm_model else f"{pc.litellm_provider}/{name}"
            # A proxy of a known model is taken to cost and do what the model does elsewhere.
            entry = self._map_entry(litellm_model) or self._map_entry_of(plain)
            api_base, api_key = pc.api_base, pc.key()
        else:
            key = self._exact_key(provider, name) or self._by_dep.get((provider, plain))
            entry = self._map.get(key) if key else None
            if cfg and cfg.litellm_model:
                litellm_model = cfg.litellm_model
            elif key:
                name_in_key = self._name_in_key(provider, key)
                litellm_model = key if key == f"{provider}/{name_in_key}" else f"{provider}/{name_in_key}"
            else:
                litellm_model = f"{provider}/{name}"
            api_base = api_key = None
        if entry is None:
            head, _, rest = litellm_model.partition("/")
            entry = self._image_model_entry(_map_provider(head), rest) if rest else None
        fields: dict[str, Any] = {"tools": True}
        if entry is not None:
            fields = {cap: bool(entry.get(flag)) for flag, cap in _CAPABILITY_FLAGS}
            fields["image_output"] = "image" in (entry.get("supported_output_modalities") or [])
            fields["known"] = frozenset(CAPABILITIES)
            fields["input_price"] = _per_million(entry.get("input_cost_per_token"))
            fields["output_price"] = _per_million(entry.get("output_cost_per_token"))
            window = entry.get("max_input_tokens") or entry.get("max_tokens")
            fields["context_window"] = window if isinstance(window, int) and not isinstance(window, bool) else None
        fields.update(self.scores().get(plain, {}))
        for override in (self._any.get(plain), cfg):
            if override is not None:
                fields.update(_overrides(override))
                fields["known"] = frozenset(fields.get("known", ())) | frozenset(override.capabilities)
        info = ModelInfo(model=plain, provider=provider, litellm_model=litellm_model, api_base=api_base,
                         api_key=api_key, **fields)
        available, key_env = self._key_status(provider, litellm_model)
        info = replace(info, available=available, key_env=key_env)
        self._deployments[(provider, plain)] = info
        return info

    def _exact_key(self, provider: str, name: str) -> str | None:
        assert self._map is not None
        for key in (f"{provider}/{name}", name):
            entry = self._map.get(key)
            if isinstance(entry, dict) and entry.get("mode") in ("chat", "responses") \
                    and _map_provider(str(entry.get("litellm_provider"))) == provider:
                return key
        return None

    def _image_model_entry(self, provider: str, name: str) -> dict[str, Any] | None:
        """The map's entry for a model that answers chat completions with text and images
        but is filed as ``image_generation`` (Gemini's image models), if ``name`` is one."""
        assert self._map is not None
        for key in (f"{provider}/{name}", name):
            entry = self._map.get(key)
            if isinstance(entry, dict) and entry.get("mode") == "image_generation" \
                    and {"text", "image"} <= set(entry.get("supported_output_modalities") or []) \
                    and _map_provider(str(entry.get("litellm_provider"))) == provider:
                return entry
        return None

    def _map_entry(self, litellm_model: str) -> dict[str, Any] | None:
        """litellm's map entry for what litellm is given (``openai/gpt-4.1-mini`` -> ``gpt-4.1-mini``)."""
        assert self._map is not None
        head, _, rest = litellm_model.partition("/")
        key = self._exact_key(_map_provider(head), rest) if rest else None
        if key is None and litellm_model in self._map:
            key = litellm_model
        entry = self._map.get(key) if key else None
        return entry if isinstance(entry, dict) else None

    def _map_entry_of(self, plain: str) -> dict[str, Any] | None:
        """The map entry of a plain id's first-listed deployment (its maker's, when known)."""
        assert self._map is not None
        rows = (self._index or {}).get(plain)
        return self._map.get(rows[0][1]) if rows else None

    def _build_pool(self) -> list[ModelInfo]:
        out: dict[str, ModelInfo] = {}
        if self.config.models:
            for m, provider, name in self._entry_order:
                infos = [self._deployment(provider, name)] if provider else self._resolve(plain_id(name))
                for info in infos:
                    out.setdefault(info.id, info)
        else:
            for model in self.scores():
                for info in self._resolve(plain_id(model)):
                    out.setdefault(info.id, info)
        return list(out.values())

    # ------------------------------------------------------------------- keys

    def _refresh(self, infos: list[ModelInfo]) -> list[ModelInfo]:
        """``infos`` with ``available`` (and config keys) re-read from the environment."""
        status: dict[str, tuple[bool, str | None, str | None]] = {}
        out = []
        for info in infos:
            st = status.get(info.provider)
            if st is None:
                available, key_env = self._key_status(info.provider, info.litellm_model)
                pc = self.config.providers.get(info.provider)
                st = status[info.provider] = (available, key_env, pc.key() if pc is not None else None)
            if info.available != st[0] or (info.api_key != st[2] and info.provider in self.config.providers):
                info = replace(info, available=st[0], key_env=st[1],
                               api_key=st[2] if info.provider in self.config.providers else info.api_key)
            out.append(info)
        return out

    def _key_status(self, provider: str, litellm_model: str) -> tuple[bool, str | None]:
        """(the key is present, the env var it is read from) for a deployment."""
        pc: ProviderConfig | None = self.config.providers.get(provider)
        if pc is not None:
            if pc.api_key:
                return True, None
            if pc.api_key_env:
                return bool(os.environ.get(pc.api_key_env)), pc.api_key_env
            if pc.api_base:
                return True, None
            provider = pc.litellm_provider
        return provider_key_status(provider)


def known_key_rules(provider: str) -> bool:
    """Whether this catalog knows how ``provider`` is keyed (its table, or keyless local servers)."""
    return provider in _PROVIDER_KEYS or provider in _KEYLESS


def provider_key_status(provider: str) -> tuple[bool, str | None]:
    """Whether a litellm provider's key is in the environment, and the variable that holds it.

    A table for common providers; otherwise the convention ``<PROVIDER>_API_KEY``.
    (``litellm.validate_environment`` is not used: it reports nothing missing for
    providers it has no rule for, and for some, e.g. ``github_copilot``, it
    starts an OAuth device flow over the network.)
    """
    if provider in _KEYLESS:
        return True, None
    rules = _PROVIDER_KEYS.get(provider)
    if rules is not None:
        for alternative in rules:
            if all(os.environ.get(var) for var in alternative):
                return True, alternative[0]
        return False, " + ".join(rules[0])
    conventional = f"{provider.upper()}_API_KEY"
    return bool(os.environ.get(conventional)), conventional


def _overrides(m: ModelConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m.input_price is not None:
        out["input_price"] = m.input_price
    if m.output_price is not None:
        out["output_price"] = m.output_price
    if m.context_window is not None:
        out["context_window"] = m.context_window
    for cap, value in m.capabilities.items():
        if cap not in CAPABILITIES:
            raise InvalidRequestError(f"config: models ({m.id}): unknown capability {cap!r}; "
                                      f"use {', '.join(CAPABILITIES)}", param="config")
        out[cap] = bool(value)
    for key, value in m.scores.items():
        if key not in SCORE_KEYS:
            raise InvalidRequestError(f"config: models ({m.id}): unknown score {key!r}; use {', '.join(SCORE_KEYS)}",
                                      param="config")
        out[key] = float(value)
    return out


_catalog: Catalog | None = None
_catalog_lock = threading.Lock()


def get_catalog() -> Catalog:
    """The process's catalog, built once from :func:`grounding.config.get_config`."""
    global _catalog
    if _catalog is None:
        with _catalog_lock:
            if _catalog is None:
                _catalog = Catalog(get_config())
    return _catalog


def reset() -> None:
    """Forget the process's catalog (the next :func:`get_catalog` rebuilds it)."""
    global _catalog
    _catalog = None
