"""The typed settings (config/settings.py): one checked object per section, defaults only in config/config.yaml."""
from __future__ import annotations

import copy
import dataclasses
import typing

import pytest

from config.loader import ConfigError, load_config
from config.settings import Section, ServingConfig, Settings, load_settings


def _sections(section: type[Section]) -> list[type[Section]]:
    """``section`` and every section nested in it."""
    found = [section]
    for hint in typing.get_type_hints(section).values():
        for candidate in (hint, *typing.get_args(hint)):
            if isinstance(candidate, type) and issubclass(candidate, Section) and candidate not in found:
                found += [nested for nested in _sections(candidate) if nested not in found]
    return found


def test_every_section_of_the_file_is_typed_and_reads_back_as_written():
    settings = load_settings()
    assert settings.as_dict() == load_config()
    assert settings.training.learning_rate.max == load_config()["training"]["learning_rate"]["max"]
    assert settings.hybrid.default.item_item.values == "any"
    assert isinstance(settings.serving, ServingConfig)


def test_no_setting_has_a_default_in_code():
    """config/config.yaml is the one source of defaults: no field of any section may carry its own."""
    sections = _sections(Settings)
    assert len(sections) >= 15
    with_default = [f"{section.__name__}.{field.name}" for section in sections for field in dataclasses.fields(section)
                    if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING]
    assert not with_default


@pytest.mark.parametrize(("path", "key"), [((), "sed"), (("hybrid", "item_item"), "valus"),
                                           (("training", "learning_rate"), "peak"), (("serving",), "simlar_users")])
def test_a_misspelt_setting_is_refused_by_its_dotted_name(path, key):
    config = copy.deepcopy(load_config())
    section = config
    for name in path:
        section = section[name]
    section[key] = 1
    with pytest.raises(ConfigError, match=f"{'.'.join(('config', *path)) if not path else '.'.join(path)}.*{key}"):
        Settings.from_mapping(config)


def test_a_missing_setting_is_refused_by_its_dotted_name():
    config = copy.deepcopy(load_config())
    del config["evaluation"]["original_objective"]["learning_rate"]["exp_decay"]
    with pytest.raises(ConfigError, match=r"evaluation\.original_objective\.learning_rate.*missing.*exp_decay"):
        Settings.from_mapping(config)


def test_a_section_that_is_not_a_mapping_is_refused():
    config = copy.deepcopy(load_config())
    config["hybrid"]["default"] = [1, 2]
    with pytest.raises(ConfigError, match="hybrid.default.*must be a mapping"):
        Settings.from_mapping(config)


def test_a_changed_copy_is_checked_again_and_the_original_is_untouched():
    settings = load_settings()
    changed = settings.replaced("model.embedding_size", 8)
    assert changed.model.embedding_size == 8 and settings.model.embedding_size != 8
    assert changed.value("model.embedding_size") == 8
    with pytest.raises(ConfigError, match="model.embeding_size"):
        settings.replaced("model.embeding_size", 8)
    with pytest.raises(ConfigError, match="data.source"):
        settings.replaced("data.source", "ftp")


def test_typed_settings_pass_through_and_a_mapping_is_typed_once():
    settings = load_settings()
    assert Settings.of(settings) is settings
    assert Settings.of(load_config()) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1  # type: ignore[misc]
