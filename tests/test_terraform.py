"""deploy/terraform: every setting it passes is one the function knows, every policy file it
attaches exists and can be a custom policy, the provider is pinned, the function and its timer are
the ones template.yaml describes.

The configuration is read with python-hcl2, without Terraform or the provider. Each check is a
function returning the problems it finds, so that the tests below can show it finding them in a
small bad configuration, and finding none in the real one.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

from modelarts_cleanup.settings import ENV_NAMES, SECRET_ENV_NAMES, load_settings

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "deploy" / "terraform"
POLICIES = ROOT / "deploy" / "policies"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
# Never in the plain user_data, which anyone who may read the function's configuration can read.
CREDENTIALS = SECRET_ENV_NAMES | {name for name in ENV_NAMES if name.startswith("HUAWEICLOUD_SDK_")}
# Anything in the text that looks like one of the function's settings.
SETTING_LIKE = re.compile(r"\b(?:MODELARTS_CLEANUP|HUAWEICLOUD_SDK)_[A-Z0-9_]*[A-Z0-9]\b")
# The keys of object literals written inside an expression: `{ NAME = ...` or `, "NAME" = ...`.
INLINE_KEY = re.compile(r'[{,]\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*=(?![=>])')
REFERENCE = re.compile(r"\b(local|var)\.([A-Za-z_][A-Za-z0-9_-]*)")
FILE_CALL = re.compile(r'\bfile(?:base64)?\("((?:[^"\\]|\\.)*)"\)')
FUNCTION = "huaweicloud_fgs_function"
TRIGGER = "huaweicloud_fgs_function_trigger"
AGENCY = "huaweicloud_identity_agency"


def _load_package_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_package", ROOT / "deploy" / "package.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


# --- Reading a configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The blocks of every .tf file of one directory, merged as Terraform merges them."""

    directory: Path
    text: str
    terraform: list[dict[str, Any]]
    providers: dict[str, dict[str, Any]]
    variables: dict[str, dict[str, Any]]
    locals: dict[str, Any]
    resources: dict[str, dict[str, dict[str, Any]]]

    def default(self, name: str) -> Any:
        """A variable's default; KeyError when it has none (a value the user must give)."""
        return self.variables[name]["default"]

    def resolve(self, value: Any) -> Any:
        """A plain reference (`var.x`, `local.y`) replaced by what it stands for."""
        if isinstance(value, str):
            match = re.fullmatch(r"\$\{(local|var)\.([A-Za-z_][A-Za-z0-9_-]*)\}", value)
            if match:
                kind, name = match.groups()
                return self.resolve(self.locals[name] if kind == "local" else self.default(name))
        return value

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(kind, {})


def parse_config(files: Mapping[str, str], directory: Path = TERRAFORM) -> Config:
    """Parse HCL texts (file name -> text) into one Config."""
    terraform: list[dict[str, Any]] = []
    providers: dict[str, dict[str, Any]] = {}
    variables: dict[str, dict[str, Any]] = {}
    local_values: dict[str, Any] = {}
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    for text in files.values():
        parsed = hcl2.loads(text, serialization_options=OPTIONS)
        terraform.extend(parsed.get("terraform", []))
        for block in parsed.get("provider", []):
            providers.update(block)
        for block in parsed.get("variable", []):
            variables.update(block)
        for block in parsed.get("locals", []):
            local_values.update(block)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                resources.setdefault(kind, {}).update(named)
    return Config(
        directory=directory,
        text="\n".join(files.values()),
        terraform=terraform,
        providers=providers,
        variables=variables,
        locals=local_values,
        resources=resources,
    )


def load_config(directory: Path = TERRAFORM) -> Config:
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.tf"))}
    return parse_config(files, directory)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def object_keys(config: Config, value: Any, seen: frozenset[str] = frozenset()) -> set[str]:
    """The keys of the object a value builds: its own, or those of what its expression merges."""
    if isinstance(value, dict):
        return set(value)
    if not isinstance(value, str):
        return set()
    keys = set(INLINE_KEY.findall(value))
    for kind, name in REFERENCE.findall(value):
        reference = f"{kind}.{name}"
        if reference in seen:
            continue
        target = config.locals[name] if kind == "local" else config.variables[name].get("default")
        keys |= object_keys(config, target, seen | {reference})
    return keys


def passed_settings(config: Config) -> dict[str, set[str]]:
    """Per function attribute (user_data, encrypted_user_data), the setting names it passes."""
    passed: dict[str, set[str]] = {}
    for function in config.of_type(FUNCTION).values():
        for attribute in ("user_data", "encrypted_user_data"):
            if attribute in function:
                passed.setdefault(attribute, set()).update(object_keys(config, function[attribute]))
    return passed


# --- The checks ----------------------------------------------------------------------------------


def setting_problems(config: Config, known: frozenset[str]) -> list[str]:
    """Setting names the function does not know, passed to it or written anywhere."""
    problems = [
        f"{attribute} passes {name}, which is not a setting of the function"
        for attribute, names in sorted(passed_settings(config).items())
        for name in sorted(names - known)
    ]
    problems += [
        f"{name} is named but is not a setting of the function"
        for name in sorted(set(SETTING_LIKE.findall(config.text)) - known)
    ]
    return problems


def credential_problems(config: Config) -> list[str]:
    plain = passed_settings(config).get("user_data", set())
    return [f"user_data carries the credential {name}" for name in sorted(plain & CREDENTIALS)]


def _file_paths(config: Config, resource: dict[str, Any]) -> Iterator[str]:
    """Every path a resource reads with file(), one per value each.key can take."""
    for value in _strings(resource):
        for template in FILE_CALL.findall(value):
            template = template.replace("${path.module}", str(config.directory))
            template = re.sub(
                r"\$\{local\.(\w+)\}",
                lambda m: str(config.locals[m.group(1)]).replace(
                    "${path.module}", str(config.directory)
                ),
                template,
            )
            if "${each.key}" not in template:
                yield template
                continue
            for key in sorted(_each_keys(config, resource)):
                yield template.replace("${each.key}", key)


def _each_keys(config: Config, resource: dict[str, Any]) -> set[str]:
    """What each.key can be: the defaults for_each iterates over, and every key of a local map
    looked up by each.key (a value outside it fails at plan)."""
    keys: set[str] = set()
    for kind, name in REFERENCE.findall(str(resource.get("for_each", ""))):
        target = config.locals[name] if kind == "local" else config.variables[name].get("default")
        keys |= set(target) if isinstance(target, list | dict) else set()
    for value in _strings(resource):
        for name in re.findall(r"local\.(\w+)\[each\.key\]", value):
            keys |= set(config.locals[name])
    return keys


def policy_problems(config: Config) -> list[str]:
    """Policy files read that do not exist, are not JSON, or cannot be a custom policy (1.1)."""
    problems: list[str] = []
    for role_name, role in config.of_type("huaweicloud_identity_role").items():
        paths = list(_file_paths(config, role))
        if not paths:
            problems.append(f"huaweicloud_identity_role.{role_name} reads no policy file")
        for raw in paths:
            path = Path(raw).resolve()
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            if path.parent != POLICIES:
                problems.append(f"{shown} is not in deploy/policies/")
            if not path.is_file():
                problems.append(f"{shown} does not exist")
                continue
            try:
                version = json.loads(path.read_text(encoding="utf-8")).get("Version")
            except json.JSONDecodeError as exc:
                problems.append(f"{shown} is not JSON ({exc.msg})")
                continue
            if version != "1.1":
                problems.append(f"{shown} is a version {version} policy, not a custom policy (1.1)")
    if not config.of_type("huaweicloud_identity_role"):
        problems.append("no huaweicloud_identity_role: the agency would hold no policy")
    return problems


def provider_problems(config: Config) -> list[str]:
    required: dict[str, Any] = {}
    for block in config.terraform:
        for providers in block.get("required_providers", []):
            required.update(providers)
    huaweicloud = required.get("huaweicloud")
    if not isinstance(huaweicloud, dict):
        return ["required_providers does not name huaweicloud"]
    problems = []
    if huaweicloud.get("source") != "huaweicloud/huaweicloud":
        problems.append(f"provider source is {huaweicloud.get('source')!r}")
    version = str(huaweicloud.get("version", ""))
    if not re.search(r">=?\s*\d", version) or not re.search(r"(<|~>)\s*\d", version):
        problems.append(f"provider version {version!r} is not pinned to a range")
    provider = config.providers.get("huaweicloud")
    if provider is None:
        problems.append("no provider block for huaweicloud")
    else:
        if "region" not in provider:
            problems.append("the provider block sets no region")
        if set(provider) & {"access_key", "secret_key", "security_token"}:
            problems.append("the provider block holds credentials")
    return problems


def function_problems(config: Config) -> list[str]:
    functions = config.of_type(FUNCTION)
    if len(functions) != 1:
        return [f"{len(functions)} {FUNCTION} resources, not one"]
    (function,) = functions.values()
    problems = []
    if (runtime := config.resolve(function.get("runtime"))) != "Python3.10":
        problems.append(f"runtime is {runtime!r}, not Python3.10")
    if (handler := config.resolve(function.get("handler"))) != "handler.handler":
        problems.append(f"handler is {handler!r}, not handler.handler")
    if config.resolve(function.get("code_type")) != "zip" or "filebase64(" not in str(
        function.get("func_code")
    ):
        problems.append("the code is not the zip, read with filebase64()")
    if f"{AGENCY}." not in str(function.get("agency")):
        problems.append("the function's agency is not the configuration's own")
    return problems


def timer_problems(config: Config) -> list[str]:
    timers = [
        trigger
        for trigger in config.of_type(TRIGGER).values()
        if config.resolve(trigger.get("type")) == "TIMER"
    ]
    if len(timers) != 1:
        return [f"{len(timers)} TIMER triggers, not one"]
    (timer,) = timers
    problems = []
    if f"{FUNCTION}." not in str(timer.get("function_urn")):
        problems.append("the timer does not trigger the configuration's function")
    encoded = re.fullmatch(r"\$\{jsonencode\((local\.\w+)\)\}", str(timer.get("event_data")))
    event = config.resolve("${" + encoded.group(1) + "}") if encoded else None
    if not isinstance(event, dict):
        problems.append("event_data is not jsonencode() of a local object")
        return problems
    if event.get("schedule_type") != "Cron" or not config.resolve(event.get("schedule")):
        problems.append("the timer has no cron schedule")
    if event.get("user_event") != "":
        problems.append("the timer carries a payload; its settings should say what it deletes")
    return problems


# --- The real configuration ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="module")
def template_function() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "template.yaml").read_text(encoding="utf-8"))
    (service,) = loaded["services"].values()
    props: dict[str, Any] = service["props"]
    return props


def test_every_file_parses_and_the_directory_holds_a_whole_configuration(config: Config) -> None:
    names = {path.name for path in TERRAFORM.glob("*.tf")}
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= names
    assert config.providers and config.variables and config.locals and config.resources


def test_terraform_passes_only_settings_the_function_knows(config: Config) -> None:
    assert passed_settings(config)["user_data"]  # the check below has something to check
    assert setting_problems(config, ENV_NAMES) == []


def test_terraform_passes_no_credentials(config: Config) -> None:
    assert credential_problems(config) == []


def test_terraform_attaches_only_policy_files_that_exist(config: Config) -> None:
    assert policy_problems(config) == []


def test_terraform_provider_is_pinned(config: Config) -> None:
    assert provider_problems(config) == []


def test_terraform_function_runs_the_package_on_python_3_10(config: Config) -> None:
    assert function_problems(config) == []


def test_terraform_timer_exists_and_carries_no_payload(config: Config) -> None:
    assert timer_problems(config) == []


def test_terraform_ships_on_the_safe_side(config: Config) -> None:
    """Like template.yaml: a dry run, and a timer that runs only once someone enables it."""
    assert config.default("dry_run") is True
    assert config.default("timer_enabled") is False
    (timer,) = config.of_type(TRIGGER).values()
    assert re.fullmatch(
        r'\$\{var\.timer_enabled \? "ACTIVE" : "DISABLED"\}', timer["status"].replace("\\", "")
    )
    assert config.locals["settings"]["MODELARTS_CLEANUP_DRY_RUN"] == "${tostring(var.dry_run)}"


def test_terraform_sets_what_template_yaml_sets(
    config: Config, template_function: dict[str, Any]
) -> None:
    function = template_function["function"]
    template_settings = set(function["environmentVariables"])
    passed = passed_settings(config)["user_data"]
    assert template_settings <= passed
    # What Terraform sets besides is what the template names in a comment, left to its default.
    template_text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    assert all(f"# {name}:" in template_text for name in passed - template_settings)
    (tf_function,) = config.of_type(FUNCTION).values()
    assert config.resolve(tf_function["handler"]) == function["handler"]
    assert config.resolve(tf_function["runtime"]) == function["runtime"]
    assert config.resolve(tf_function["memory_size"]) == function["memorySize"]
    assert config.resolve(tf_function["timeout"]) == function["timeout"]
    event = config.locals["timer_event"]
    template_event = template_function["trigger"]["eventData"]
    assert config.resolve(event["schedule"]) == template_event["schedule"]
    assert event["schedule_type"] == template_event["scheduleType"]
    assert event["user_event"] == template_event["userEvent"]


def test_terraform_default_rule_loads_as_the_templates_does(config: Config) -> None:
    """The settings Terraform computes from the defaults, evaluated by hand where they are plain."""
    project = "0123456789abcdef0123456789abcdef"
    rule = {**config.locals["default_selectors"][0], "project_id": project}
    settings = load_settings(
        {
            "MODELARTS_CLEANUP_REGION": config.default("region"),
            "MODELARTS_CLEANUP_DRY_RUN": json.dumps(config.default("dry_run")),
            "MODELARTS_CLEANUP_SELECTORS": json.dumps([rule]),
            "MODELARTS_CLEANUP_ALLOWED_PROJECTS": json.dumps([project]),
            "MODELARTS_CLEANUP_LIST_SCOPE": config.default("list_scope"),
            "MODELARTS_CLEANUP_API": config.default("api"),
            "MODELARTS_CLEANUP_LOG_LEVEL": config.default("log_level"),
        }
    )
    (selector,) = settings.selectors
    assert selector.grace_hours == 48 and selector.idle_hours == 168
    assert settings.dry_run is True


def test_terraform_code_package_is_the_zip_make_package_writes(config: Config) -> None:
    project = _load_package_tool().read_project(ROOT / "pyproject.toml")
    package = Path(config.default("code_package"))
    assert package.name == f"{project.name}-{project.version}.zip"
    assert (TERRAFORM / package).resolve().parent == ROOT / "dist"


def test_terraform_variables_are_described_and_hold_no_credentials(config: Config) -> None:
    assert all(variable.get("description") for variable in config.variables.values())
    assert not {name for name in config.variables if re.search(r"secret|access_key|token", name)}
    # The one value without a sensible default.
    assert [name for name, v in config.variables.items() if "default" not in v] == ["project_id"]


def test_terraform_agency_is_delegated_to_functiongraph(config: Config) -> None:
    (agency,) = config.of_type(AGENCY).values()
    assert agency["delegated_service_name"] == "op_svc_cff"
    # One project_role per project the function may reach: its region's, project_regions' and
    # agency_projects' (a dynamic block over local.agency_projects).
    (dynamic,) = agency["dynamic"]
    (project_role,) = [v for k, v in dynamic.items() if k.strip('"') == "project_role"]
    assert "local.agency_projects" in str(project_role["for_each"])
    assert "huaweicloud_identity_role.agency" in str(project_role["content"])
    agency_projects = str(config.locals["agency_projects"])
    for source in ("local.iam_project", "var.project_regions", "var.agency_projects"):
        assert source in agency_projects, source


def test_terraform_readme_says_how_to_stop_it(config: Config) -> None:
    readme = (TERRAFORM / "README.md").read_text(encoding="utf-8")
    for words in ("terraform init", "terraform plan", "terraform apply", "timer_enabled"):
        assert words in readme
    assert "dry_run" in readme and "MODELARTS_CLEANUP_DRY_RUN" in readme
    assert set(SETTING_LIKE.findall(readme)) <= ENV_NAMES


# --- Each check finds what it is for -------------------------------------------------------------

GOOD = """
terraform {
  required_providers {
    huaweicloud = {
      source  = "huaweicloud/huaweicloud"
      version = ">= 1.62.1, < 2.0.0"
    }
  }
}
provider "huaweicloud" {
  region = var.region
}
variable "region" {
  description = "Region."
  default     = "cn-north-4"
}
variable "policies" {
  description = "Policy files."
  default     = ["base"]
}
variable "extra" {
  description = "More settings."
  default     = {}
}
locals {
  scopes   = { "base" = "XA" }
  settings = { MODELARTS_CLEANUP_REGION = var.region, MODELARTS_CLEANUP_DRY_RUN = "true" }
  all      = merge(local.settings, var.extra)
}
resource "huaweicloud_identity_role" "agency" {
  for_each = toset(var.policies)
  type     = local.scopes[each.key]
  policy   = file("${path.module}/../policies/${each.key}.json")
}
resource "huaweicloud_identity_agency" "a" {
  delegated_service_name = "op_svc_cff"
}
resource "huaweicloud_fgs_function" "f" {
  runtime   = "Python3.10"
  handler   = "handler.handler"
  code_type = "zip"
  func_code = filebase64("x.zip")
  agency    = huaweicloud_identity_agency.a.name
  user_data = jsonencode(local.all)
}
locals {
  timer = { name = "t", schedule_type = "Cron", schedule = "0 0 2 * * ?", user_event = "" }
}
resource "huaweicloud_fgs_function_trigger" "t" {
  function_urn = huaweicloud_fgs_function.f.urn
  type         = "TIMER"
  event_data   = jsonencode(local.timer)
}
"""


def _bad(old: str, new: str) -> Config:
    assert old in GOOD, old
    return parse_config({"main.tf": GOOD.replace(old, new, 1)})


def test_the_small_configuration_passes_every_check() -> None:
    good = parse_config({"main.tf": GOOD})
    assert passed_settings(good) == {
        "user_data": {"MODELARTS_CLEANUP_REGION", "MODELARTS_CLEANUP_DRY_RUN"}
    }
    assert setting_problems(good, ENV_NAMES) == []
    assert credential_problems(good) == []
    assert policy_problems(good) == []
    assert provider_problems(good) == []
    assert function_problems(good) == []
    assert timer_problems(good) == []


def test_a_misspelled_setting_is_caught() -> None:
    bad = _bad("MODELARTS_CLEANUP_DRY_RUN =", "MODELARTS_CLEANUP_DRYRUN =")
    assert setting_problems(bad, ENV_NAMES) == [
        "user_data passes MODELARTS_CLEANUP_DRYRUN, which is not a setting of the function",
        "MODELARTS_CLEANUP_DRYRUN is named but is not a setting of the function",
    ]


def test_a_setting_without_the_prefix_is_caught() -> None:
    bad = _bad("MODELARTS_CLEANUP_DRY_RUN =", "DRY_RUN =")
    assert setting_problems(bad, ENV_NAMES) == [
        "user_data passes DRY_RUN, which is not a setting of the function"
    ]


def test_a_setting_written_inline_in_the_merge_is_caught() -> None:
    bad = _bad("merge(local.settings, var.extra)", 'merge(local.settings, { LOG_LEVL = "INFO" })')
    assert setting_problems(bad, ENV_NAMES) == [
        "user_data passes LOG_LEVL, which is not a setting of the function"
    ]


def test_a_setting_in_a_variables_default_is_caught() -> None:
    bad = _bad("default     = {}", 'default     = { MODELARTS_CLEANUP_COLOUR = "blue" }')
    assert "user_data passes MODELARTS_CLEANUP_COLOUR, which is not a setting of the function" in (
        setting_problems(bad, ENV_NAMES)
    )


def test_an_unknown_setting_named_only_in_a_description_is_caught() -> None:
    bad = _bad('description = "Region."', 'description = "See MODELARTS_CLEANUP_REGON."')
    assert setting_problems(bad, ENV_NAMES) == [
        "MODELARTS_CLEANUP_REGON is named but is not a setting of the function"
    ]


def test_the_known_names_are_read_from_the_settings_not_a_copy() -> None:
    good = parse_config({"main.tf": GOOD})
    without_dry_run = ENV_NAMES - {"MODELARTS_CLEANUP_DRY_RUN"}
    assert "user_data passes MODELARTS_CLEANUP_DRY_RUN, which is not a setting of the function" in (
        setting_problems(good, without_dry_run)
    )


def test_a_credential_in_user_data_is_caught() -> None:
    bad = _bad('MODELARTS_CLEANUP_DRY_RUN = "true"', 'HUAWEICLOUD_SDK_SK = "s3cr3t"')
    assert credential_problems(bad) == ["user_data carries the credential HUAWEICLOUD_SDK_SK"]


def test_a_missing_policy_file_is_caught() -> None:
    bad = _bad('default     = ["base"]', 'default     = ["base", "selector"]')
    assert policy_problems(bad) == ["deploy/policies/selector.json does not exist"]


def test_a_policy_file_outside_deploy_policies_is_caught() -> None:
    bad = _bad("/../policies/${each.key}.json", "/../${each.key}.json")
    assert policy_problems(bad) == [
        "deploy/base.json is not in deploy/policies/",
        "deploy/base.json does not exist",
    ]


def test_a_policy_that_cannot_be_a_custom_policy_is_caught() -> None:
    # deny-delete-protected.json is an identity policy (5.0), for people, not for the agency.
    bad = _bad(
        'scopes   = { "base" = "XA" }', 'scopes = { "base" = "XA", "deny-delete-protected" = "XA" }'
    )
    assert policy_problems(bad) == [
        "deploy/policies/deny-delete-protected.json is a version 5.0 policy,"
        " not a custom policy (1.1)"
    ]


def test_an_unpinned_provider_is_caught() -> None:
    bad = _bad('version = ">= 1.62.1, < 2.0.0"', 'version = ">= 1.62.1"')
    assert provider_problems(bad) == ["provider version '>= 1.62.1' is not pinned to a range"]
    unversioned = _bad('version = ">= 1.62.1, < 2.0.0"', "")
    assert provider_problems(unversioned) == ["provider version '' is not pinned to a range"]


def test_a_provider_from_elsewhere_or_without_region_is_caught() -> None:
    bad = _bad('source  = "huaweicloud/huaweicloud"', 'source  = "example/huaweicloud"')
    assert provider_problems(bad) == ["provider source is 'example/huaweicloud'"]
    regionless = _bad("region = var.region\n}", 'access_key = "AK"\n}')
    assert provider_problems(regionless) == [
        "the provider block sets no region",
        "the provider block holds credentials",
    ]


def test_a_wrong_runtime_or_handler_is_caught() -> None:
    assert function_problems(_bad('"Python3.10"', '"Python3.9"')) == [
        "runtime is 'Python3.9', not Python3.10"
    ]
    assert function_problems(_bad('"handler.handler"', '"index.handler"')) == [
        "handler is 'index.handler', not handler.handler"
    ]


def test_a_missing_timer_is_caught() -> None:
    assert timer_problems(_bad('type         = "TIMER"', 'type         = "APIG"')) == [
        "0 TIMER triggers, not one"
    ]


def test_a_timer_with_a_payload_or_no_schedule_is_caught() -> None:
    assert timer_problems(_bad('user_event = ""', 'user_event = "{}"')) == [
        "the timer carries a payload; its settings should say what it deletes"
    ]
    assert timer_problems(_bad('schedule_type = "Cron"', 'schedule_type = "Rate"')) == [
        "the timer has no cron schedule"
    ]
