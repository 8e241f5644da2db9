import pytest

from project.env import EnvError, env_bool, env_int, env_list, env_str


def test_it_accepts_only_true_or_false(monkeypatch):
    monkeypatch.setenv("FLAG", "true")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "off")
    assert env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "yes please")
    with pytest.raises(EnvError, match="FLAG='yes please' is not a boolean"):
        env_bool("FLAG", False)


def test_it_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    assert env_bool("NOPE", True) is True
    assert env_int("NOPE", 7) == 7
    assert env_list("NOPE", ["a"]) == ["a"]


def test_it_rejects_bad_integers(monkeypatch):
    monkeypatch.setenv("N", "12x")
    with pytest.raises(EnvError, match="not an integer"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(EnvError, match="at least 1"):
        env_int("N", 1, minimum=1)


def test_it_reads_secrets_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("API_KEY_FILE", str(secret))
    assert env_str("API_KEY") == "s3cret"
    monkeypatch.setenv("API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(EnvError, match="API_KEY_FILE"):
        env_str("API_KEY")


def test_it_splits_lists(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example ,,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]
