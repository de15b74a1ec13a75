#!/usr/bin/env python3
"""Checks that template.yaml (SAM) and the CDK app's synthesized template
describe the same stack, that the stack matches the code it deploys, and that
it leaks no secret and grants no more than it must.

    python3 tests/infra/test_templates.py CDK_TEMPLATE_JSON

Offline: template.yaml goes through the SAM translator (the one cfn-lint
ships) into plain CloudFormation, then both templates are compared resource
by resource with intrinsic functions rendered to one canonical form. Prints
one line per test and a last line `infra-python: N passed, M failed`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from suite_runner import run_tests

from cfnlint.decode import cfn_yaml
from samtranslator.parser import parser as sam_parser
from samtranslator.translator.translator import Translator

REPO = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ inputs

# Variables a function may read that the template deliberately leaves unset,
# and why. Anything else a function reads must be set by the template.
OPTIONAL_VARS = {
    "DYNAMODB_ENDPOINT": "local only: points the store at moto / DynamoDB Local; in AWS the SDK's regional endpoint is right",
    "TINCAN_WS_ENDPOINT": "optional: the Management API endpoint defaults to https://{domainName}/{stage} of each event",
    "TINCAN_DATA_DIR": "local only: the local stack's embedded account store; the Lambda build has none",
    "AWS_REGION": "set by Lambda itself (reserved) and by the media node's user data; the SDK configuration reads it",
    "AWS_ACCESS_KEY_ID": "credentials come from the Lambda role / the instance profile, never the environment we set",
    "TINCAN_TURN_NO_TCP": "optional media-node flag: TURN over TCP stays on",
    "TINCAN_REGION": "optional media-node flag: defaults to AWS_REGION, which the user data sets",
    "TINCAN_HEARTBEAT_SECS": "optional media-node flag: the built-in heartbeat interval",
    "TINCAN_SFU_DISABLED": "optional media-node flag: the SFU runs unless disabled",
    "TINCAN_TURN_UDP_BUFFER": "optional media-node flag: 2 MiB socket buffers by default (the user data raises net.core.rmem_max/wmem_max to 4 MiB)",
    "TINCAN_TURN_UDP_LISTENERS": "optional media-node flag: one UDP listener per CPU by default",
    "TINCAN_SFU_CONTROL_URL": "optional media-node flag: the control URL advertised defaults to the public IP and TINCAN_SFU_CONTROL_ADDR's port",
    "TINCAN_SFU_ROOM_MAX": "the media node's own cap (the user data sets it to RoomMax); the Lambdas cap rooms with TINCAN_ROOM_MAX",
    "TINCAN_TURN_TLS_ADDR": "set by the user data only with TurnTlsDomain, in a block of its own (test_turn_over_tls_on_443_only_when_configured)",
    "TINCAN_TURN_TLS_CERT": "optional media-node flag: see TINCAN_TURN_TLS_ADDR",
    "TINCAN_TURN_TLS_KEY": "optional media-node flag: see TINCAN_TURN_TLS_ADDR",
    "TINCAN_TURN_TLS_NAME": "optional media-node flag: the certificate's DNS name for turns:, see TINCAN_TURN_TLS_ADDR",
    "TINCAN_HASH_WORKERS": "optional: one password-hashing worker per core of the Lambda (README)",
    "TINCAN_HASH_QUEUE": "optional: the built-in bound on queued hashes (README)",
    "TINCAN_LOGIN_FAILURES_PER_USER_ADDR": "optional: built-in login limit (README); counted in the throttles table, shared by all containers",
    "TINCAN_LOGIN_FAILURES_PER_USER": "optional: built-in login limit (README); counted in the throttles table, shared by all containers",
    "TINCAN_LOGIN_FAILURES_PER_ADDR": "optional: built-in login limit (README); counted in the throttles table, shared by all containers",
    "TINCAN_LOGIN_FAILURE_WINDOW_SECS": "optional: built-in login-limit window (README)",
    "TINCAN_REGISTRATIONS_PER_ADDR": "optional: built-in registration limit (README); counted in the throttles table, shared by all containers",
    "TINCAN_REGISTRATION_WINDOW_SECS": "optional: built-in registration-limit window (README)",
    "TINCAN_TURN_IP_QUOTA": "optional media-node flag: the built-in per-address allocation quota",
    "TINCAN_TURN_DENIED_PEERS": "optional media-node flag: the built-in deny-list is coturn's",
    "TINCAN_TURN_ALLOWED_PEERS": "optional media-node flag: nothing is allowed over the deny-list",
    "TINCAN_TURN_TCP_PER_IP": "optional media-node flag: the built-in per-address TCP connection cap",
    "TINCAN_TURN_TCP_FIRST_MESSAGE_SECS": "optional media-node flag: the built-in 10 s",
    "TINCAN_TURN_TCP_IDLE_SECS": "optional media-node flag: the built-in 300 s",
    "TINCAN_SFU_CONTROL_CONNS_PER_IP": "optional media-node flag: the built-in 8 control connections per address",
    "TINCAN_SFU_CONTROL_SECRET": "set where a node is called (ws-default, ws-disconnect's shared environment) and on the nodes; ws-connect parses the shared config but calls no node (test_sfu_control_secret_goes_where_it_is_used)",
}
# Set in AWS, these would point a function away from AWS or at a laptop path.
MUST_NOT_SET = {"DYNAMODB_ENDPOINT", "TINCAN_DATA_DIR"}
# Variables whose value is a secret: only a Secrets Manager dynamic reference will do.
SECRET_VARS = {"TINCAN_JWT_SECRET", "TINCAN_TURN_SECRET", "TINCAN_SFU_CONTROL_SECRET", "MONGODB_URI"}
# Files that read the environment but never run inside a deployed Lambda.
NOT_IN_LAMBDA = {
    "media-node/src/sfu/room_harness.rs": "the SFU room harness's seed replay (TINCAN_SEED, tests only)",
    "crates/accounts/src/secantus.rs": "starts SecantusDB for tests (feature test-support)",
    "crates/aws/src/testing.rs": "starts moto for tests (feature testing)",
}
# Actions AWS only accepts with Resource "*": why, and whether a condition
# must narrow them (True) or AWS offers none that fits (False).
WILDCARD_RESOURCE_ACTIONS = {
    "cloudwatch:PutMetricData": ("no resource-level permissions; narrowed by the cloudwatch:namespace condition", True),
    "ssm:UpdateInstanceInformation": ("Session Manager: the agent registers the instance it runs on", False),
    "ssmmessages:CreateControlChannel": ("Session Manager channels have no resource-level permissions", False),
    "ssmmessages:CreateDataChannel": ("Session Manager channels have no resource-level permissions", False),
    "ssmmessages:OpenControlChannel": ("Session Manager channels have no resource-level permissions", False),
    "ssmmessages:OpenDataChannel": ("Session Manager channels have no resource-level permissions", False),
}


def load_sam() -> dict:
    """template.yaml, translated to plain CloudFormation by the SAM translator."""
    template = json.loads(json.dumps(cfn_yaml.load(str(REPO / "template.yaml"))))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "InlineCode" not in resource["Properties"]:
            resource["Properties"]["CodeUri"] = "s3://sam-build/placeholder.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://sam-build/placeholder-layer.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    translator = Translator(managed_policy_map={}, sam_parser=sam_parser.Parser())
    return translator.translate(
        sam_template=template, parameter_values={}, passthrough_metadata=True
    )


# A function's published version has a hashed logical ID in both tools (SAM:
# <Function>Version<hash of the code>, CDK: <Function>CurrentVersion<hash of
# code and configuration>), so a change publishes a new one; compared as
# <Function>Version.
VERSION_ID = re.compile(r"\b(\w+?Function)(?:Version[0-9a-f]{10}|CurrentVersion[0-9A-Fa-f]{8,})\b")


def same_version_ids(template: dict) -> dict:
    return json.loads(VERSION_ID.sub(r"\1Version", json.dumps(template)))


def as_deployed(sam: dict) -> dict:
    """What CloudFormation's own SAM transform makes of what the offline
    translator resolves: a parameter's value (here its default) and the
    partition of the translator's region."""
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CodeDeploy::DeploymentGroup":
            props["DeploymentConfigName"] = {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}",
                                                         {"ConfigName": {"Ref": "LambdaDeploymentType"}}]}
        if resource["Type"] == "AWS::IAM::Role" and "ManagedPolicyArns" in props:
            props["ManagedPolicyArns"] = [
                {"Fn::Sub": arn.replace("arn:aws:", "arn:${AWS::Partition}:")} if isinstance(arn, str) else arn
                for arn in props["ManagedPolicyArns"]
            ]
    return sam


# How web/ gets into the app's bucket is the one place where the two tools
# differ by design: SAM ships it as a layer that a small inline custom
# resource copies (WebContentLayer, WebDeployFunction, WebDeployment), the
# CDK app uses BucketDeployment (WebDeployment*, CDK's singleton handler).
# These deploy-time helpers are set apart from the parity, IAM and alarm
# tests, and checked for what they must do by the test_web_* tests below.
WEB_DELIVERY = re.compile(r"^(WebContentLayer|WebDeployFunction|WebDeployment|CustomCDKBucketDeployment)")


def split_web_delivery(template: dict) -> tuple[dict, dict]:
    """(the template without the web-delivery helpers, the helpers)."""
    helpers = {k: v for k, v in template["Resources"].items() if WEB_DELIVERY.match(k)}
    rest = dict(template, Resources={k: v for k, v in template["Resources"].items() if k not in helpers})
    return rest, helpers


SAM_RAW, SAM_RAW_WEB = split_web_delivery(cfn_yaml.load(str(REPO / "template.yaml")))
SAM, SAM_WEB = split_web_delivery(same_version_ids(as_deployed(load_sam())))
CDK_OUT = Path(sys.argv[1]).parent if len(sys.argv) > 1 else None
CDK, CDK_WEB = (
    split_web_delivery(same_version_ids(json.loads(Path(sys.argv[1]).read_text()))) if len(sys.argv) > 1 else (None, {})
)

# ------------------------------------------------------------- canonical form


def canon(value):
    """Intrinsics rendered as `${Name}` / `${Name.Attr}` strings, scalars as
    strings, lists order-free; so `!Sub a-${X}` and CDK's
    `Fn::Join ["", ["a-", {Ref: X}]]` compare equal."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return "${%s}" % arg
            if key == "Fn::GetAtt":
                return "${%s}" % (arg if isinstance(arg, str) else ".".join(arg))
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return arg
                text, variables = arg
                for name, v in variables.items():
                    text = text.replace("${%s}" % name, canon(v))
                return text
            if key == "Fn::Join":
                sep, items = arg
                parts = [canon(i) for i in items]
                if all(isinstance(p, str) for p in parts):
                    return sep.join(parts)
                return {key: [sep, parts]}
        out = {}
        for k, v in value.items():
            v = canon(v)
            if k in ("Action", "Resource", "NotAction", "NotResource") and isinstance(v, str):
                v = [v]
            out[k] = v
        return out
    if isinstance(value, list):
        return sorted((canon(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


def comparable(resource: dict) -> dict:
    """A resource without what legitimately differs between SAM and CDK:
    where the code zip lives, SAM's `lambda:createdBy` tag, CDK metadata."""
    props = copy.deepcopy(resource.get("Properties", {}))
    if resource["Type"] == "AWS::Lambda::Function":
        props.pop("Code", None)
        tags = [t for t in props.pop("Tags", []) if t.get("Key") != "lambda:createdBy"]
        if tags:
            props["Tags"] = tags
    policy = {k: resource[k] for k in ("DeletionPolicy", "UpdateReplacePolicy", "CreationPolicy", "UpdatePolicy") if k in resource}
    return canon({"Type": resource["Type"], "Properties": props, **policy})


def templates():
    yield "template.yaml", SAM
    if CDK is not None:
        yield "CDK", CDK


def resources(template: dict, type_: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def functions(template: dict) -> dict:
    """Logical ID -> AWS::Lambda::Function, for the four Rust functions."""
    return resources(template, "AWS::Lambda::Function")


def binary_of(logical_id: str) -> str:
    """The cargo [[bin]] behind a function, from template.yaml's build metadata."""
    return SAM_RAW["Resources"][logical_id]["Metadata"]["BuildProperties"]["Binary"]


def fail(message: str):
    raise AssertionError(message)


# ------------------------------------------------------------- rust sources

ENV_LITERAL = re.compile(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"')


def rust_code(path: Path) -> str:
    """A Rust file without comments and without its `#[cfg(test)]` tail."""
    text = path.read_text()
    text = text.split("#[cfg(test)]")[0]
    return "\n".join(line.split("//")[0] if not line.lstrip().startswith("//") else "" for line in text.splitlines())


def fn_body(code: str, name: str) -> str:
    """The text of `fn name(...) { ... }` (or `struct name { ... }`) in `code`."""
    m = re.search(r"\b(?:fn|struct) %s\b[^{;]*\{" % re.escape(name), code)
    if not m:
        fail(f"no fn or struct {name}")
    depth, i = 1, m.end()
    while depth and i < len(code):
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        i += 1
    return code[m.start():i]


CLAP_ARG_WITH_DEFAULT = re.compile(r"#\[arg\([^\]]*\benv\s*=\s*\"[A-Z0-9_]+\"[^\]]*\bdefault_value[^\]]*\]")


def env_vars_read(rel_paths) -> dict:
    """Environment variable names each file reads: all-caps string literals
    (`std::env::var("X")`, wrappers like `required("X")`, `env = "X"` in
    clap attributes, `const X_ENV: &str = "X"`), plus RUST_LOG where an
    `EnvFilter` reads it."""
    found = {}
    for rel in rel_paths:
        # `path#fn` (or `path#Struct`): only that function (or those
        # settings) run in this process.
        path, _, fn = rel.partition("#")
        code = rust_code(REPO / path)
        if fn:
            code = fn_body(code, fn)
        for name in ENV_LITERAL.findall(code):
            found.setdefault(name, rel)
        if "try_from_default_env" in code or "EnvFilter::from_default_env" in code:
            found.setdefault("RUST_LOG", rel)
    return found


def env_vars_with_default(rel_paths) -> set:
    """The clap arguments among them with a default (`env = "X",
    default_value...`): unset, each has its documented value."""
    out = set()
    for rel in rel_paths:
        path, _, fn = rel.partition("#")
        code = rust_code(REPO / path)
        if fn:
            code = fn_body(code, fn)
        for attr in CLAP_ARG_WITH_DEFAULT.findall(code):
            out.update(re.findall(r'\benv\s*=\s*"([A-Z0-9_]+)"', attr))
    return out


def reads_env(code: str) -> bool:
    return bool(re.search(r"env::var|env\s*=\s*\"|from_default_env", code))


def sources_of(binary: str) -> list[str]:
    """The files whose environment reads run in `binary`'s process."""
    handlers = rust_code(REPO / "functions/src/handlers.rs")
    if binary == "http-api":
        files = [
            "functions/src/lib.rs",
            "functions/src/bin/http-api.rs",
            "crates/http-api/src/config.rs",
            "crates/accounts/src/config.rs",
            "crates/settings/src/lib.rs",
            "crates/aws/src/sdk_config.rs",
            "functions/src/config.rs#LogSettings",
            "functions/src/config.rs#HttpApiSettings",
        ]
    elif binary.startswith("ws-"):
        files = [
            "functions/src/lib.rs",
            f"functions/src/bin/{binary}.rs",
            "functions/src/config.rs#LogSettings",
            "functions/src/config.rs#WsSettings",
            # Join tokens' API keys are read by $connect alone; the others
            # take the call history's settings instead.
            "functions/src/config.rs#" + ("ConnectSettings" if binary == "ws-connect" else "HistorySettings"),
            "functions/src/handlers.rs",
            "crates/aws/src/sdk_config.rs",
            "crates/settings/src/lib.rs",
            "crates/settings/src/signaling.rs",
        ]
        # Call history in MongoDB, for every function but $connect
        # (`Deps::for_connect` opens no MongoDB client).
        if binary != "ws-connect" and "MongoSettings" in handlers:
            files.append("functions/src/history.rs")
            files.append("crates/accounts/src/config.rs#MongoSettings")
    elif binary == "tincan-media-node":
        files = [str(p.relative_to(REPO)) for p in sorted((REPO / "media-node/src").glob("*.rs"))]
        files.append("crates/aws/src/sdk_config.rs")
    else:
        fail(f"no source list for {binary}")
    return files


def workspace_crate_dirs(package_dir: str) -> set[str]:
    """`package_dir` and every workspace crate it depends on, transitively."""
    root = tomllib.loads((REPO / "Cargo.toml").read_text())
    paths = {
        name: spec["path"]
        for name, spec in root["workspace"]["dependencies"].items()
        if isinstance(spec, dict) and "path" in spec
    }
    seen, todo = set(), [package_dir]
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        manifest = tomllib.loads((REPO / d / "Cargo.toml").read_text())
        for dep in manifest.get("dependencies", {}):
            if dep in paths:
                todo.append(paths[dep])
    return seen


def cargo_bins(package_dir: str) -> set[str]:
    manifest = tomllib.loads((REPO / package_dir / "Cargo.toml").read_text())
    return {b["name"] for b in manifest.get("bin", [])}


def user_data(template: dict) -> str:
    lt = template["Resources"]["MediaNodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    sub = lt["UserData"]["Fn::Base64"]["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def user_data_env(script: str) -> dict:
    """The media node's environment file, as the user data writes it."""
    block = re.search(r"cat > /etc/tincan/media-node.env <<ENV\n(.*?)\nENV\n", script, re.S)
    if not block:
        fail("user data writes no /etc/tincan/media-node.env")
    return dict(line.split("=", 1) for line in block.group(1).splitlines() if line.strip())


# ------------------------------------------------------------------- tests


def test_same_resources_and_logical_ids():
    if CDK is None:
        fail("no CDK template given")
    sam_ids, cdk_ids = set(SAM["Resources"]), set(CDK["Resources"])
    if sam_ids != cdk_ids:
        fail(f"only in template.yaml: {sorted(sam_ids - cdk_ids)}; only in CDK: {sorted(cdk_ids - sam_ids)}")
    for lid in sorted(sam_ids):
        a, b = SAM["Resources"][lid]["Type"], CDK["Resources"][lid]["Type"]
        if a != b:
            fail(f"{lid}: {a} in template.yaml, {b} in CDK")


def test_same_properties_everywhere():
    """Every resource's properties agree once intrinsics are normalized."""
    diffs = []
    for lid, resource in SAM["Resources"].items():
        other = CDK["Resources"].get(lid)
        if other is None:
            continue
        a, b = comparable(resource), comparable(other)
        if a != b:
            diffs.append(f"{lid}:\n  template.yaml {json.dumps(a, sort_keys=True)[:600]}\n  CDK           {json.dumps(b, sort_keys=True)[:600]}")
    if diffs:
        fail("resources differ:\n" + "\n".join(diffs))


def test_same_parameters_conditions_outputs():
    for section in ("Parameters", "Conditions"):
        a, b = canon(SAM.get(section, {})), canon(CDK.get(section, {}))
        if section == "Parameters":  # the CDK bootstrap check is CDK's own
            b.pop("BootstrapVersion", None)
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            fail(f"{section} differ at {keys}")
    a = {k: canon(v["Value"]) for k, v in SAM["Outputs"].items()}
    b = {k: canon(v["Value"]) for k, v in CDK["Outputs"].items()}
    if a != b:
        fail(f"Outputs differ at {sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))}")
    for name in ("WebSocketUrl", "HttpApiUrl"):
        if name not in a:
            fail(f"no {name} output")


def test_every_cargo_bin_is_deployed_once():
    bins = cargo_bins("functions")
    deployed = {}
    for lid, resource in resources(SAM_RAW, "AWS::Serverless::Function").items():
        meta = resource.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            fail(f"{lid}: BuildMethod is not rust-cargolambda")
        binary = meta.get("BuildProperties", {}).get("Binary")
        if binary not in bins:
            fail(f"{lid}: Binary {binary!r} is not a [[bin]] of functions/ ({sorted(bins)})")
        deployed[binary] = lid
    if set(deployed) != bins:
        fail(f"[[bin]]s without a function: {sorted(bins - set(deployed))}")
    for name, t in templates():
        for lid, fn in functions(t).items():
            p = fn["Properties"]
            if (p.get("Runtime"), p.get("Handler")) != ("provided.al2023", "bootstrap"):
                fail(f"{name} {lid}: runtime {p.get('Runtime')}, handler {p.get('Handler')}")
            if canon(p.get("Architectures")) != ["${LambdaArchitecture}"]:
                fail(f"{name} {lid}: Architectures not the LambdaArchitecture parameter")
            group = canon(p.get("LoggingConfig", {}).get("LogGroup", ""))
            log_id = group.strip("${}")
            retention = t["Resources"].get(log_id, {}).get("Properties", {}).get("RetentionInDays")
            if retention is None:
                fail(f"{name} {lid}: logs to {group!r}, not a log group of ours with retention")
    if SAM["Parameters"]["LambdaArchitecture"]["Default"] != "arm64":
        fail("functions are not arm64 by default")


def test_websocket_api_routes():
    for name, t in templates():
        apis = {lid: r for lid, r in resources(t, "AWS::ApiGatewayV2::Api").items()}
        ws = [lid for lid, r in apis.items() if r["Properties"]["ProtocolType"] == "WEBSOCKET"]
        if len(ws) != 1:
            fail(f"{name}: {len(ws)} WebSocket APIs")
        if apis[ws[0]]["Properties"].get("RouteSelectionExpression") != "$request.body.action":
            fail(f"{name}: route selection is not $request.body.action")
        routes = {}
        integrations = resources(t, "AWS::ApiGatewayV2::Integration")
        for lid, r in resources(t, "AWS::ApiGatewayV2::Route").items():
            p = r["Properties"]
            if canon(p["ApiId"]) != "${%s}" % ws[0]:
                continue
            integration = canon(p["Target"]).removeprefix("integrations/").strip("${}")
            uri = canon(integrations[integration]["Properties"]["IntegrationUri"])
            # The function's alias `live`, which CodeDeploy moves, never
            # the function itself.
            alias = re.search(r"/functions/\$\{(\w+Aliaslive)\}/invocations$", uri)
            if not alias:
                fail(f"{name}: {p['RouteKey']} invokes {uri}, not a function's alias live")
            fn = canon(t["Resources"][alias.group(1)]["Properties"]["FunctionName"]).strip("${}")
            routes[p["RouteKey"]] = binary_of(fn)
        want = {"$connect": "ws-connect", "$disconnect": "ws-disconnect", "$default": "ws-default"}
        if routes != want:
            fail(f"{name}: WebSocket routes {routes}, want {want}")
        stages = [r for r in resources(t, "AWS::ApiGatewayV2::Stage").values() if canon(r["Properties"]["ApiId"]) == "${%s}" % ws[0]]
        if len(stages) != 1:
            fail(f"{name}: WebSocket API has {len(stages)} stages")


def test_lambdas_deploy_gradually_and_roll_back_on_their_alarms():
    """Each function publishes versions behind an alias `live`; CodeDeploy
    shifts it by LambdaDeploymentType (a canary by default) and rolls back
    when the function's own error alarm fires; API Gateway integrations and
    invoke permissions name the alias, never the function."""
    for name, t in templates():
        for lid in functions(t):
            short = lid.removesuffix("Function")
            alias = t["Resources"].get(f"{lid}Aliaslive")
            if not alias or alias["Type"] != "AWS::Lambda::Alias" or alias["Properties"]["Name"] != "live":
                fail(f"{name} {lid}: no alias live")
            if canon(alias["Properties"]["FunctionVersion"]) != "${%sVersion.Version}" % lid:
                fail(f"{name} {lid}: the alias does not follow the published version")
            version = t["Resources"][f"{lid}Version"]
            if version.get("DeletionPolicy") != "Retain":
                fail(f"{name} {lid}: old versions are deleted (the alias may still point at one)")
            update = canon(alias.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate"))
            if update != {"ApplicationName": "${ServerlessDeploymentApplication}",
                          "DeploymentGroupName": "${%sDeploymentGroup}" % lid}:
                fail(f"{name} {lid}: the alias is not moved by CodeDeploy ({update})")
            group = canon(t["Resources"][f"{lid}DeploymentGroup"]["Properties"])
            if group["DeploymentConfigName"] != "CodeDeployDefault.Lambda${LambdaDeploymentType}":
                fail(f"{name} {lid}: deployment config {group['DeploymentConfigName']}")
            rollback = group["AutoRollbackConfiguration"]
            if rollback["Enabled"] != "true" or "DEPLOYMENT_STOP_ON_ALARM" not in rollback["Events"]:
                fail(f"{name} {lid}: no automatic rollback on the alarm ({rollback})")
            if group["AlarmConfiguration"] != {"Enabled": "true", "Alarms": [{"Name": "${%sDeployAlarm}" % short}]}:
                fail(f"{name} {lid}: deployments watch {group['AlarmConfiguration']}, not {short}DeployAlarm")
            watched = alarm_metrics(t["Resources"][f"{short}DeployAlarm"])
            want = {("FunctionName", "${%s}" % lid), ("Resource", "${%s}:live" % lid)}
            if {m for ns, m, dims in watched if ns == "AWS/Lambda" and set(dims) == want} != {"Errors", "Invocations"}:
                fail(f"{name} {short}DeployAlarm does not read {lid}'s errors through its alias: {watched}")
        for lid, perm in resources(t, "AWS::Lambda::Permission").items():
            target = canon(perm["Properties"]["FunctionName"])
            if not re.fullmatch(r"\$\{\w+Function(Aliaslive)\}", target):
                fail(f"{name} {lid}: lets API Gateway invoke {target}, not an alias live")
        uri = canon(t["Resources"]["HttpApiIntegration"]["Properties"]["IntegrationUri"])
        if uri != "${HttpApiFunctionAliaslive}":
            fail(f"{name}: the HTTP API invokes {uri}, not http-api's alias live")
    default = SAM["Parameters"]["LambdaDeploymentType"]["Default"]
    if not default.startswith(("Canary", "Linear")):
        fail(f"the default deployment shifts {default}, not gradually")


def http_routes_in_code() -> set[str]:
    """`METHOD /path` of every route of the axum router in crates/http-api."""
    code = rust_code(REPO / "crates/http-api/src/lib.rs")
    routes = set()
    chunks = code.split(".route(")[1:]
    for chunk in chunks:
        path = re.match(r'\s*"([^"]+)"', chunk).group(1)
        body = re.split(r"\.(?:layer|with_state|fallback|merge|nest)\(", chunk)[0]
        for method in re.findall(r"\b(get|post|put|delete|patch)\(", body):
            routes.add(f"{method.upper()} {path}")
    return routes


def test_http_api_routes_match_the_router():
    code_routes = http_routes_in_code()
    if len(code_routes) < 9:
        fail(f"parsed only {sorted(code_routes)} from crates/http-api/src/lib.rs")
    for name, t in templates():
        apis = resources(t, "AWS::ApiGatewayV2::Api")
        http = [lid for lid, r in apis.items() if r["Properties"]["ProtocolType"] == "HTTP"]
        if len(http) != 1:
            fail(f"{name}: {len(http)} HTTP APIs")
        keys = {
            r["Properties"]["RouteKey"]
            for r in resources(t, "AWS::ApiGatewayV2::Route").values()
            if canon(r["Properties"]["ApiId"]) == "${%s}" % http[0]
        }
        keys.discard("OPTIONS /{proxy+}")
        if keys != code_routes:
            fail(f"{name}: HTTP routes differ from the router: missing {sorted(code_routes - keys)}, extra {sorted(keys - code_routes)}")


def test_tables_match_the_store_code():
    item = (REPO / "crates/store/src/dynamo/item.rs").read_text()
    const = dict(re.findall(r'const (\w+): &str = "([^"]+)"', item))
    want = canon({
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": const["PK"], "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": const["PK"], "AttributeType": "S"},
            {"AttributeName": const["ROOM"], "AttributeType": "S"},
            {"AttributeName": const["CONNECTED_AT"], "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": const["ROOM_INDEX"],
            "KeySchema": [
                {"AttributeName": const["ROOM"], "KeyType": "HASH"},
                {"AttributeName": const["CONNECTED_AT"], "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }],
        "TimeToLiveSpecification": {"AttributeName": const["EXPIRES_AT"], "Enabled": True},
    })
    fleet_dir = REPO / "crates/fleet/src/dynamo"
    fleet = dict(re.findall(r'const (\w+): &str = "([^"]+)"', (fleet_dir / "item.rs").read_text()))
    fleet_index = re.search(r'FLEET_INDEX: &str = "([^"]+)"', (fleet_dir / "mod.rs").read_text()).group(1)
    nodes = canon({
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": fleet["PK"], "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": fleet["PK"], "AttributeType": "S"},
            {"AttributeName": fleet["FLEET"], "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": fleet_index,
            "KeySchema": [{"AttributeName": fleet["FLEET"], "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        "TimeToLiveSpecification": {"AttributeName": fleet["EXPIRES_AT"], "Enabled": True},
    })
    # The throttles table (crates/store/src/dynamo/throttle.rs): key and TTL
    # of the connections table's item module, nothing else.
    throttles = canon({
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": const["PK"], "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": const["PK"], "AttributeType": "S"}],
        "TimeToLiveSpecification": {"AttributeName": const["EXPIRES_AT"], "Enabled": True},
    })
    for name, t in templates():
        tables = resources(t, "AWS::DynamoDB::Table")
        if set(tables) != {"ConnectionsTable", "MediaNodesTable", "ThrottlesTable"}:
            fail(f"{name}: tables {sorted(tables)}")
        # Encryption and backups are options of the stack, not the layout
        # (test_tables_take_a_customer_key_and_point_in_time_recovery).
        layout = lambda lid: canon({k: v for k, v in tables[lid]["Properties"].items()
                                    if k not in ("SSESpecification", "PointInTimeRecoverySpecification")})
        got = layout("ConnectionsTable")
        if got != want:
            fail(f"{name}: connections table {got} != store layout {want}")
        if layout("MediaNodesTable") != nodes:
            fail(f"{name}: media_nodes table differs from crates/fleet/src/dynamo's layout {nodes}")
        if layout("ThrottlesTable") != throttles:
            fail(f"{name}: throttles table differs from crates/store/src/dynamo/throttle.rs's layout {throttles}")


NO_VALUE = {"Ref": "AWS::NoValue"}


def resolve_if(value, truth: dict | None = None):
    """`value` with every Fn::If decided: each condition true unless `truth`
    says otherwise; AWS::NoValue items dropped."""
    truth = truth or {}
    if isinstance(value, dict):
        if list(value) == ["Fn::If"]:
            cond, yes, no = value["Fn::If"]
            return resolve_if(yes if truth.get(cond, True) else no, truth)
        return {k: resolve_if(v, truth) for k, v in value.items() if resolve_if(v, truth) != NO_VALUE}
    if isinstance(value, list):
        return [resolve_if(v, truth) for v in value if resolve_if(v, truth) != NO_VALUE]
    return value


def statements(template: dict):
    for lid, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for st in resolve_if(policy["PolicyDocument"]["Statement"]):
                yield lid, canon(st)
    for lid, policy in resources(template, "AWS::IAM::Policy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield lid, canon(st)


def test_iam_names_our_resources():
    """No `*` action; Resource `*` only where AWS requires it, with a
    condition; DynamoDB on our tables only; ManageConnections on our
    WebSocket API only; no managed policies but CodeDeploy's own for Lambda
    deployments, on the role only CodeDeploy may assume (SAM's
    DeploymentPreference creates it so)."""
    ours = set(SAM["Resources"])
    codedeploy = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"}
    for name, t in templates():
        for lid, role in resources(t, "AWS::IAM::Role").items():
            managed = role["Properties"].get("ManagedPolicyArns")
            if lid == "CodeDeployServiceRole" and canon(managed) == canon([codedeploy]):
                principals = [canon(s["Principal"]) for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
                if principals != [{"Service": ["codedeploy.amazonaws.com"]}]:
                    fail(f"{name} {lid}: assumable by {principals}, not CodeDeploy alone")
            elif managed:
                fail(f"{name} {lid}: managed policies grant more than we name")
        if resources(t, "AWS::IAM::Policy"):
            fail(f"{name}: stray AWS::IAM::Policy resources {sorted(resources(t, 'AWS::IAM::Policy'))}")
        for lid, st in statements(t):
            for action in st["Action"]:
                if "*" in action:
                    fail(f"{name} {lid}: wildcard action {action}")
            for resource in st["Resource"]:
                if resource == "*":
                    actions = set(st["Action"])
                    needs_condition = any(WILDCARD_RESOURCE_ACTIONS.get(a, ("", True))[1] for a in actions)
                    if not actions <= set(WILDCARD_RESOURCE_ACTIONS) or (needs_condition and not st.get("Condition")):
                        fail(f"{name} {lid}: Resource * for {st['Action']} without need or condition")
                    continue
                refs = set(re.findall(r"\$\{([A-Za-z0-9]+)[.}]", resource)) - {"AWS"}
                if not refs & ours and "AWS::StackName" not in resource and not any(p in resource for p in ("${MediaNodeArtifact", "${TurnTlsCertificateSecret}")):
                    fail(f"{name} {lid}: {resource} names none of our resources")
                service = st["Action"][0].split(":")[0]
                if service == "dynamodb" and not refs & {"ConnectionsTable", "MediaNodesTable", "ThrottlesTable"}:
                    fail(f"{name} {lid}: DynamoDB on {resource}")
                if service == "execute-api" and "${WebSocketApi}" not in resource:
                    fail(f"{name} {lid}: ManageConnections on {resource}")
                if service == "logs" and not any(r.endswith("LogGroup") for r in refs):
                    fail(f"{name} {lid}: logs on {resource}")
        manage = [st for _, st in statements(t) if "execute-api:ManageConnections" in st["Action"]]
        if not manage or not all(r.endswith("/@connections/*") for st in manage for r in st["Resource"]):
            fail(f"{name}: ManageConnections is not limited to our API's @connections")


def test_iam_same_in_both():
    def per_role(t):
        out = {}
        for lid, st in statements(t):
            out.setdefault(lid, []).append(json.dumps(st, sort_keys=True))
        return {k: sorted(v) for k, v in out.items()}
    a, b = per_role(SAM), per_role(CDK)
    if a != b:
        fail(f"IAM differs for roles {sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))}")


def test_every_env_var_a_function_reads_is_set():
    """Parse the Rust config code each function runs, and the templates."""
    problems = []
    for name, t in templates():
        for lid, fn in functions(t).items():
            binary = binary_of(lid)
            reads = env_vars_read(sources_of(binary))
            defaulted = env_vars_with_default(sources_of(binary))
            env = canon(fn["Properties"].get("Environment", {}).get("Variables", {}))
            for var, where in sorted(reads.items()):
                if var not in env and var not in OPTIONAL_VARS and var not in defaulted:
                    problems.append(f"{name} {binary}: reads {var} ({where}); the template does not set it")
            for var in sorted(env):
                if var not in reads:
                    problems.append(f"{name} {binary}: sets {var}, which {binary} never reads")
                if var in MUST_NOT_SET:
                    problems.append(f"{name} {binary}: sets local-only {var}")
    if problems:
        fail("\n".join(problems))


def test_every_env_reading_file_is_traced():
    """A new config file in a crate the functions use must be assigned to a
    function (sources_of) or listed as never running in a Lambda."""
    covered = set(NOT_IN_LAMBDA)
    for binary in [*cargo_bins("functions"), "tincan-media-node"]:
        covered |= {s.partition("#")[0] for s in sources_of(binary)}
    for package in ("functions", "media-node"):
        for crate in workspace_crate_dirs(package):
            for path in sorted((REPO / crate / "src").rglob("*.rs")):
                rel = str(path.relative_to(REPO))
                if rel not in covered and reads_env(rust_code(path)):
                    fail(f"{rel} reads the environment but no function's source list includes it")


def test_media_node_env_is_set_by_user_data():
    reads = env_vars_read(sources_of("tincan-media-node"))
    defaulted = env_vars_with_default(sources_of("tincan-media-node"))
    for name, t in templates():
        env = user_data_env(user_data(t))
        missing = [v for v in reads if v not in env and v not in OPTIONAL_VARS and v not in defaulted]
        unread = [v for v in env if v not in reads]
        if missing or unread:
            fail(f"{name}: media node reads but user data omits {missing}; user data sets unread {unread}")
        for secret in ("TINCAN_TURN_SECRET", "TINCAN_SFU_CONTROL_SECRET"):
            if not env[secret].startswith("$"):
                fail(f"{name}: {secret} in user data is a literal")
        relay = (env["TINCAN_RELAY_PORT_MIN"], env["TINCAN_RELAY_PORT_MAX"])
        if relay != ("${RelayPortMin}", "${RelayPortMax}"):
            fail(f"{name}: relay ports {relay} are not the parameters the security group opens")


def test_sfu_control_secret_goes_where_it_is_used():
    """The control secret is set for the function that calls the nodes
    (ws-default) and read by the nodes from their own secret, and reaches no
    function that never calls a node."""
    want = "{{resolve:secretsmanager:${SfuControlSecret}:SecretString:::}}"
    for name, t in templates():
        for lid, fn in functions(t).items():
            env = canon(fn["Properties"].get("Environment", {}).get("Variables", {}))
            binary = lid.lower()
            value = env.get("TINCAN_SFU_CONTROL_SECRET")
            if "wsdefault" in binary and value != want:
                fail(f"{name} {lid}: TINCAN_SFU_CONTROL_SECRET is {value!r}")
            if ("wsconnect" in binary or "httpapi" in binary) and value is not None:
                fail(f"{name} {lid}: gets the SFU control secret but calls no node")
        if user_data_env(user_data(t)).get("TINCAN_SFU_CONTROL_SECRET") != "$SFU_CONTROL_SECRET":
            fail(f"{name}: the nodes' user data does not pass the secret it read")
        if "--secret-id '${SfuControlSecret}'" not in user_data(t):
            fail(f"{name}: the nodes' user data does not read SfuControlSecret")
        if "GenerateSecretString" not in resources(t, "AWS::SecretsManager::Secret").get("SfuControlSecret", {}).get("Properties", {}):
            fail(f"{name}: SfuControlSecret is not a secret of its own, generated in the stack")


def test_user_data_is_one_script():
    a, b = user_data(SAM), user_data(CDK)
    shared = (REPO / "infra/lib/media-node-user-data.sh").read_text()
    if a != shared or b != shared:
        fail("template.yaml's user data and infra/lib/media-node-user-data.sh differ")


def test_user_data_is_valid_bash():
    script = user_data(SAM)
    rendered = re.sub(r"\$\{(AWS::\w+|\w+)\}", lambda m: "x" if not m.group(1).endswith(("Min", "Max", "Seconds")) else "1", script)
    rendered = rendered.replace("${!", "${")
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(rendered)
    try:
        done = subprocess.run(["bash", "-n", f.name], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            fail(f"bash -n: {done.stderr}")
    finally:
        os.unlink(f.name)
    for needle in ("systemctl enable --now tincan-media-node.service", "target-lifecycle-state",
                   "complete-lifecycle-action", "put-metric-data", "secretsmanager get-secret-value"):
        if needle not in script:
            fail(f"user data lacks {needle!r}")


def test_secrets_are_never_literal():
    dynamic = re.compile(r"^\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString:::\}\}$")
    secrets = set(resources(SAM, "AWS::SecretsManager::Secret"))
    for name, t in templates():
        for lid, fn in functions(t).items():
            env = canon(fn["Properties"].get("Environment", {}).get("Variables", {}))
            for var in SECRET_VARS & set(env):
                m = dynamic.match(env[var])
                if not m or m.group(1) not in secrets:
                    fail(f"{name} {lid}: {var} is {env[var]!r}, not a dynamic reference to our secret")
        for lid, s in resources(t, "AWS::SecretsManager::Secret").items():
            p = s["Properties"]
            literal = p.get("SecretString")
            if literal is not None and canon(literal) != "${MongoDbUri}":
                fail(f"{name} {lid}: literal SecretString")
            if literal is None and "GenerateSecretString" not in p:
                fail(f"{name} {lid}: neither generated nor from a NoEcho parameter")
        mongo = t["Parameters"]["MongoDbUri"]
        if str(mongo.get("NoEcho")).lower() != "true" or "Default" in mongo:
            fail(f"{name}: MongoDbUri must be NoEcho without a default")
    # Nothing that looks like a credential anywhere in the IaC sources.
    leak = re.compile(r"(mongodb(\+srv)?://[^\s'\"]*:[^\s'\"]*@|AKIA[0-9A-Z]{16}|-----BEGIN)")
    for rel in ["template.yaml", *[str(p.relative_to(REPO)) for p in (REPO / "infra").glob("**/*") if p.is_file() and "node_modules" not in p.parts and "cdk.out" not in p.parts and p.suffix in (".ts", ".json", ".sh")]]:
        if leak.search((REPO / rel).read_text()):
            fail(f"{rel} contains something that looks like a credential")


def test_media_fleet():
    for name, t in templates():
        sg = resolve_if(t["Resources"]["MediaNodeSecurityGroup"]["Properties"], {"HasTurnTls": False})
        ingress = sorted((r["IpProtocol"], canon(r["FromPort"]), canon(r["ToPort"])) for r in sg["SecurityGroupIngress"])
        want = sorted([
            ("tcp", "3478", "3478"),
            ("udp", "3478", "3478"),
            ("udp", "${RelayPortMin}", "${RelayPortMax}"),
            # The SFU: media, and the token-authenticated control API.
            ("udp", "3479", "3479"),
            ("tcp", "7881", "7881"),
            # The load balancer's health check, from private addresses only.
            ("tcp", "9100", "9100"), ("tcp", "9100", "9100"), ("tcp", "9100", "9100"),
        ])
        if ingress != want:
            fail(f"{name}: security group opens {ingress}, want exactly {want}")
        health_from = sorted(r["CidrIp"] for r in sg["SecurityGroupIngress"] if canon(r["FromPort"]) == "9100")
        if health_from != ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]:
            fail(f"{name}: the health-check port is open to {health_from}, want the private ranges only")
        for group in ("TurnTargetGroup", "TurnTlsTargetGroup"):
            tg = t["Resources"][group]["Properties"]
            check = (tg.get("HealthCheckProtocol"), canon(tg.get("HealthCheckPort")), tg.get("HealthCheckPath"))
            if check != ("HTTP", "9100", "/healthz"):
                fail(f"{name} {group}: health check {check}, want the node's own /healthz on 9100 (503 while draining)")
        tls_attrs = {a["Key"]: canon(a["Value"]) for a in t["Resources"]["TurnTlsTargetGroup"]["Properties"]["TargetGroupAttributes"]}
        if tls_attrs.get("target_health_state.unhealthy.connection_termination.enabled") != "false" \
                or tls_attrs.get("target_health_state.unhealthy.draining_interval_seconds") != "${DrainGraceSeconds}":
            fail(f"{name}: a draining (so unhealthy) node's TLS sessions would be reset: {tls_attrs}")
        asg = t["Resources"]["MediaNodeGroup"]["Properties"]
        if canon(asg["VPCZoneIdentifier"]) != "${SubnetIds}":
            fail(f"{name}: group not spread over the SubnetIds parameter")
        hooks = asg.get("LifecycleHookSpecificationList", [])
        if [h["LifecycleTransition"] for h in hooks] != ["autoscaling:EC2_INSTANCE_TERMINATING"]:
            fail(f"{name}: no draining lifecycle hook")
        script = user_data(t)
        if f"--lifecycle-hook-name {hooks[0]['LifecycleHookName']}" not in script:
            fail(f"{name}: user data completes a different hook than {hooks[0]['LifecycleHookName']}")
        if canon(asg.get("InstanceMaintenancePolicy")) != canon({"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200}):
            fail(f"{name}: replacements must launch before they terminate (InstanceMaintenancePolicy 100/200)")
        attrs = {a["Key"]: a["Value"] for a in t["Resources"]["TurnTargetGroup"]["Properties"]["TargetGroupAttributes"]}
        if attrs.get("deregistration_delay.connection_termination.enabled") != "false":
            fail(f"{name}: the load balancer cuts a draining node's flows when deregistration ends")
        if "autoscaling:SetInstanceProtection" not in [a for lid, st in statements(t) if lid == "MediaNodeRole" for a in st["Action"]]:
            fail(f"{name}: the nodes cannot protect themselves from scale-in")
        if "set-instance-protection" not in user_data(t):
            fail(f"{name}: the nodes never protect themselves from scale-in")
        policy = t["Resources"]["MediaNodeScalingPolicy"]["Properties"]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]
        if f"--namespace {policy['Namespace']}" not in script or f"$(item {policy['MetricName']} Count" not in script:
            fail(f"{name}: the scaling metric {policy['Namespace']}/{policy['MetricName']} is not what the nodes publish")
        if policy["MetricName"] != "Load":
            fail(f"{name}: the group scales on {policy['MetricName']}, not the nodes' load (allocations plus SFU participants)")
    # The scaling metric and scale-in protection follow the node's one load
    # figure, which its /metrics serves on the port the health check asks.
    script = user_data(SAM)
    if 'load=\\$(gauge tincan_node_load)' not in script or 'want=\\$([ "\\$load" -gt 0 ]' not in script:
        fail("publish-load does not publish and protect on tincan_node_load")
    if '"tincan_node_load"' not in (REPO / "media-node/src/metrics.rs").read_text():
        fail("the published gauge tincan_node_load is not in media-node/src/metrics.rs")
    env = user_data_env(script)
    if env["TINCAN_METRICS_ADDR"] != "0.0.0.0:$METRICS_PORT" or not re.search(r"^METRICS_PORT=9100$", script, re.M):
        fail(f"the health check asks port 9100, the node serves /healthz on {env['TINCAN_METRICS_ADDR']}")
    if '.route("/healthz"' not in (REPO / "media-node/src/main.rs").read_text():
        fail("the media node serves no /healthz")


def test_node_rollouts_are_versioned_checked_and_gentle():
    """The binary is named by a key and a SHA-256 per version (no default:
    every deploy names the build it runs), the user data checks the
    checksum before the binary runs, and a change to the nodes rolls the
    group one node at a time, never below the minimum, waiting for each new
    node's signal."""
    script = user_data(SAM)
    for name, t in templates():
        params = t["Parameters"]
        key, sha = params["MediaNodeArtifactKey"], params["MediaNodeArtifactSha256"]
        if "Default" in key or "Default" in sha:
            fail(f"{name}: the artifact key and checksum must be given per deploy (no default)")
        if sha.get("AllowedPattern") != "^[0-9a-f]{64}$":
            fail(f"{name}: MediaNodeArtifactSha256 accepts {sha.get('AllowedPattern')}, not a SHA-256")
        rolling = t["Resources"]["MediaNodeGroup"].get("UpdatePolicy", {}).get("AutoScalingRollingUpdate")
        if not rolling:
            fail(f"{name}: no rolling update for the media nodes")
        rolling = canon(rolling)
        if (rolling.get("MaxBatchSize"), rolling.get("MinInstancesInService"), rolling.get("WaitOnResourceSignals")) != \
                ("1", "${MediaNodeMinSize}", "true"):
            fail(f"{name}: the rolling update is not one at a time, above the minimum, on signals: {rolling}")
        if iso_seconds(rolling["PauseTime"]) < 600:
            fail(f"{name}: a new node gets {rolling['PauseTime']} to come up")
        for kept_out in ("HealthCheck", "ReplaceUnhealthy", "AZRebalance", "AlarmNotification"):
            if kept_out not in rolling.get("SuspendProcesses", []):
                fail(f"{name}: {kept_out} runs during a rolling update")
        if user_data(t) != script:
            fail(f"{name}: the user data differs")
    if "ARTIFACT_SHA256='${MediaNodeArtifactSha256}'" not in script or 'sha256sum "$BIN.download"' not in script:
        fail("the user data does not check the binary against MediaNodeArtifactSha256")


def iso_seconds(duration: str) -> int:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", duration)
    if not m:
        fail(f"{duration!r} is not an ISO 8601 duration")
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def test_media_nodes_fail_loudly():
    """The group is created only once MediaNodeMinSize nodes signal that
    they answer STUN on their public address; the nodes may send that signal
    and nothing more; a group of zero could never scale out, so it is refused."""
    script = user_data(SAM)
    stun_wait = int(re.search(r"^STUN_WAIT_SECS=(\d+)$", script, re.M).group(1))
    for name, t in templates():
        group = t["Resources"]["MediaNodeGroup"]
        signal = group.get("CreationPolicy", {}).get("ResourceSignal")
        if not signal:
            fail(f"{name}: MediaNodeGroup has no CreationPolicy ResourceSignal")
        if canon(signal.get("Count")) != "${MediaNodeMinSize}":
            fail(f"{name}: the group waits for {signal.get('Count')} signals, not MediaNodeMinSize")
        timeout = iso_seconds(signal["Timeout"])
        # Boot, package fetch and download, then the two STUN waits.
        if not 2 * stun_wait + 180 <= timeout <= 3600:
            fail(f"{name}: signal timeout {timeout}s does not fit the user data's waits ({stun_wait}s per transport)")
        if int(t["Parameters"]["MediaNodeMinSize"].get("MinValue", 0)) < 1:
            fail(f"{name}: MediaNodeMinSize may be 0, and a group of 0 never publishes the load it scales on")
        grants = [st for lid, st in statements(t) if lid == "MediaNodeRole" and "cloudformation:SignalResource" in st["Action"]]
        if [st["Resource"] for st in grants] != [["arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"]]:
            fail(f"{name}: the nodes may not signal this stack, or may signal more: {grants}")
        if any(set(st["Action"]) != {"cloudformation:SignalResource"} for st in grants):
            fail(f"{name}: the ReadySignal statement grants more than SignalResource")
    for needle in ("--logical-resource-id MediaNodeGroup", "signal SUCCESS", "signal FAILURE",
                   "wait_for_stun \"$PUBLIC_IP\"", "check_binary \"$BIN\"", "trap 'on_error"):
        if needle not in script:
            fail(f"user data lacks {needle!r}")


def alarms(t: dict) -> dict:
    return resources(t, "AWS::CloudWatch::Alarm")


def alarm_metrics(alarm: dict) -> list[tuple[str, str, tuple]]:
    """(namespace, metric, dimension names and values) of every metric an alarm reads."""
    out = []
    for m in alarm["Properties"]["Metrics"]:
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            dims = tuple(sorted((d["Name"], canon(d["Value"])) for d in metric.get("Dimensions", [])))
            out.append((metric["Namespace"], metric["MetricName"], dims))
    return out


def test_alarms_watch_the_stack():
    """Lambda errors and throttles of every function, API Gateway 5xx and
    integration errors of both APIs, DynamoDB throttles of both tables, no
    healthy media node, the group below its minimum, allocations near
    capacity, a spike of TURN auth failures; all notify the alarm topic,
    which mails AlarmEmail only when one is given."""
    fns = {f"${{{lid}}}" for lid in functions(SAM)}
    for name, t in templates():
        read = set()
        for lid, alarm in alarms(t).items():
            props = alarm["Properties"]
            for key in ("AlarmActions", "OKActions"):
                if canon(props.get(key)) != ["${AlarmTopic}"]:
                    fail(f"{name} {lid}: {key} is {props.get(key)}, not the alarm topic")
            ids = {m["Id"] for m in props["Metrics"]}
            returned = [m for m in props["Metrics"] if m.get("ReturnData")]
            if len(returned) != 1 or "Expression" not in returned[0]:
                fail(f"{name} {lid}: one expression must return the alarm's data")
            expression = canon(returned[0]["Expression"])
            used = set(re.findall(r"\b([a-z][A-Za-z0-9_]*)\b", re.sub(r"\$\{[^}]+\}", "", expression)))
            used -= {"and", "or"}
            functions_in = {w for w in used if w.upper() in ("SUM", "FILL", "IF", "AND", "OR")}
            missing = used - functions_in - ids
            if missing:
                fail(f"{name} {lid}: the expression {expression!r} names unknown metrics {sorted(missing)}")
            for ns, metric, dims in alarm_metrics(alarm):
                read.add((ns, metric, dims))
        def reads(ns, metric, **dims):
            want = tuple(sorted(dims.items()))
            return (ns, metric, want) in read
        for fn in fns:
            for metric in ("Errors", "Throttles"):
                if not reads("AWS/Lambda", metric, FunctionName=fn):
                    fail(f"{name}: no alarm reads AWS/Lambda {metric} of {fn}")
        checks = [
            ("AWS/ApiGateway", "5xx", {"ApiId": "${HttpApi}", "Stage": "$default"}),
            ("AWS/ApiGateway", "IntegrationError", {"ApiId": "${WebSocketApi}", "Stage": "${StageName}"}),
            ("AWS/ApiGateway", "ExecutionError", {"ApiId": "${WebSocketApi}", "Stage": "${StageName}"}),
            ("AWS/NetworkELB", "HealthyHostCount", {"LoadBalancer": "${TurnLoadBalancer.LoadBalancerFullName}",
                                                     "TargetGroup": "${TurnTargetGroup.TargetGroupFullName}"}),
            ("AWS/AutoScaling", "GroupInServiceInstances", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("AWS/AutoScaling", "GroupMinSize", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("Tincan/MediaNode", "Load", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("Tincan/MediaNode", "TurnAuthFailures", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("Tincan/MediaNode", "SfuParticipants", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("Tincan/MediaNode", "SfuPacketsDropped", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("Tincan/MediaNode", "CertificateDaysLeft", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
            ("AWS/EC2", "CPUUtilization", {"AutoScalingGroupName": "${MediaNodeGroup}"}),
        ]
        for table in ("${ConnectionsTable}", "${MediaNodesTable}"):
            for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
                checks.append(("AWS/DynamoDB", metric, {"TableName": table}))
        for ns, metric, dims in checks:
            if not reads(ns, metric, **dims):
                fail(f"{name}: no alarm reads {ns} {metric} {dims}")
        # The group publishes the metrics its alarms read.
        collected = set()
        for c in t["Resources"]["MediaNodeGroup"]["Properties"].get("MetricsCollection", []):
            collected |= set(c["Metrics"])
        wanted = {m for ns, m, _ in read if ns == "AWS/AutoScaling"}
        if not wanted <= collected:
            fail(f"{name}: alarms read group metrics {sorted(wanted - collected)} the group does not collect")
        sub = resources(t, "AWS::SNS::Subscription")
        if list(sub) != ["AlarmEmailSubscription"] or sub["AlarmEmailSubscription"].get("Condition") != "HasAlarmEmail" \
                or canon(sub["AlarmEmailSubscription"]["Properties"]["Endpoint"]) != "${AlarmEmail}":
            fail(f"{name}: the alarm mail must go to AlarmEmail, only when it is given")
        if "Default" not in t["Parameters"]["AlarmEmail"] or t["Parameters"]["AlarmEmail"]["Default"] != "":
            fail(f"{name}: AlarmEmail must be optional (default empty)")
    # What the alarms read from our own namespaces is what we publish.
    script = user_data(SAM)
    for ns, metric, _ in {m for a in alarms(SAM).values() for m in alarm_metrics(a)}:
        if ns == "Tincan/MediaNode" and f"$(item {metric} " not in script:
            fail(f"the alarms read {ns} {metric}, which the nodes do not publish")


def signaling_metrics_in_code() -> tuple[str, set[str]]:
    code = (REPO / "functions/src/metrics.rs").read_text()
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', code).group(1)
    names = set(re.findall(r"^//! \| `(\w+)` \|", code, re.M))
    # Typed counts: `Metric::X` where a count is made (not the `Metric::X =>`
    # arms that name them).
    uses = code.split("#[cfg(test)]")[0] + (REPO / "functions/src/handlers.rs").read_text()
    counted = set(re.findall(r"Metric::(\w+)\b(?!\s*=>)", uses)) | {"Errors"}
    if names != counted:
        fail(f"functions/src/metrics.rs documents {sorted(names)} but counts {sorted(counted)}")
    return namespace, names


def dashboard_body(t: dict) -> tuple[str, dict]:
    body = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = body if isinstance(body, str) else body[0]
    rendered = re.sub(r"\$\{[^}]+\}", "1", body)
    try:
        return body, json.loads(rendered)
    except json.JSONDecodeError as err:
        fail(f"the dashboard body is not JSON once substituted: {err}")


def test_dashboard_shows_what_we_publish():
    namespace, names = signaling_metrics_in_code()
    ours = set(SAM["Resources"]) | set(SAM["Parameters"])
    for name, t in templates():
        body, parsed = dashboard_body(t)
        for ref in set(re.findall(r"\$\{([^}]+)\}", body)):
            if not ref.startswith("AWS::") and ref.split(".")[0] not in ours:
                fail(f"{name}: the dashboard names ${{{ref}}}, which is not in the stack")
        widgets = parsed["widgets"]
        shown = {row[1] for w in widgets for row in w["properties"].get("metrics", [])
                 if isinstance(row[0], str) and row[0] == namespace}
        searched = " ".join(str(row) for w in widgets for row in w["properties"].get("metrics", []))
        for metric in names - shown:
            if f"MetricName=\"{metric}\"" not in searched:
                fail(f"{name}: the dashboard does not show {namespace} {metric}")
        alarm_widget = [w for w in widgets if w["type"] == "alarm"]
        listed = set(re.findall(r"\$\{(\w+)\.Arn\}", body))
        if not alarm_widget or listed != set(alarms(t)):
            fail(f"{name}: the alarm widget lists {sorted(listed)}, the stack has {sorted(alarms(t))}")


def test_access_logs_and_node_logs():
    for name, t in templates():
        for stage, group in (("WebSocketStage", "WebSocketAccessLogGroup"), ("HttpApiStage", "HttpApiAccessLogGroup")):
            settings = resolve_if(t["Resources"][stage]["Properties"], {"WebSocketAccessLogs": True}).get("AccessLogSettings")
            if not settings or canon(settings["DestinationArn"]) != "${%s.Arn}" % group:
                fail(f"{name} {stage}: no access log to {group}")
            fmt = settings["Format"]
            json.loads(re.sub(r"\$context\.[\w.]+", "x", fmt))
            for leak in ("querystring", "path", "$input", "authorizer", "identity.user"):
                if leak in fmt.lower():
                    fail(f"{name} {stage}: access log format writes {leak} (the WebSocket token is in the query string)")
        role = t["Resources"].get("ApiGatewayLogsRole", {})
        account = t["Resources"].get("ApiGatewayAccount", {})
        if role.get("Condition") != "CreateApiGatewayLogRole" or account.get("Condition") != "CreateApiGatewayLogRole":
            fail(f"{name}: the account-wide API Gateway log role must be optional (ApiGatewayLogRole)")
        meta = t["Resources"]["WebSocketStage"].get("Metadata", {}).get("LogRoleReady")
        if canon(meta) != canon({"Fn::If": ["CreateApiGatewayLogRole", {"Ref": "ApiGatewayAccount"}, ""]}):
            fail(f"{name}: the WebSocket stage does not wait for the log role it needs ({meta})")
        node = [st for lid, st in statements(t) if lid == "MediaNodeRole" and st.get("Sid") == "NodeLogs"]
        if not node or node[0]["Resource"] != ["${MediaNodeLogGroup.Arn}"]:
            fail(f"{name}: the nodes may not write their log group")
        ssm = {a for lid, st in statements(t) if lid == "MediaNodeRole" for a in st["Action"] if a.startswith("ssm")}
        if not {"ssm:UpdateInstanceInformation", "ssmmessages:CreateDataChannel", "ssmmessages:OpenDataChannel"} <= ssm:
            fail(f"{name}: the nodes cannot be reached by Session Manager ({sorted(ssm)})")
    script = user_data(SAM)
    for needle in ('"log_group_name": "${MediaNodeLogGroup}"', "/var/log/cloud-init-output.log",
                   "StandardOutput=append:/var/log/tincan/media-node.log"):
        if needle not in script:
            fail(f"user data lacks {needle!r}")


def test_account_wide_settings_are_left_alone_by_default():
    """ApiGatewayLogRole: `none` by default (no WebSocket access log, the
    account's API Gateway logging role untouched), `existing` logs through
    the account's role, only `create` sets it; docs/deploy.md says what each
    does and what teardown leaves."""
    for name, t in templates():
        param = t["Parameters"]["ApiGatewayLogRole"]
        if param["Default"] != "none" or sorted(param["AllowedValues"]) != ["create", "existing", "none"]:
            fail(f"{name}: ApiGatewayLogRole default {param['Default']} of {param['AllowedValues']}")
        conditions = canon(t["Conditions"])
        if conditions["CreateApiGatewayLogRole"] != {"Fn::Equals": ["${ApiGatewayLogRole}", "create"]} \
                or conditions["WebSocketAccessLogs"] != {"Fn::Not": [{"Fn::Equals": ["${ApiGatewayLogRole}", "none"]}]}:
            fail(f"{name}: log-role conditions {conditions['CreateApiGatewayLogRole']}, {conditions['WebSocketAccessLogs']}")
        default = stack_with(t, {"CreateApiGatewayLogRole": False, "WebSocketAccessLogs": False})
        if {"ApiGatewayAccount", "ApiGatewayLogsRole"} & set(default) or "AccessLogSettings" in default["WebSocketStage"]["Properties"]:
            fail(f"{name}: the default touches the account's API Gateway settings or needs its role")
        if "AccessLogSettings" not in default["HttpApiStage"]["Properties"]:
            fail(f"{name}: the HTTP API's access log (which needs no account role) must stay on")
    docs = (REPO / "docs/deploy.md").read_text()
    for needle in ("`ApiGatewayLogRole=none`", "`ApiGatewayLogRole=existing`", "`ApiGatewayLogRole=create`",
                   "update-account", "deleted role"):
        if needle not in docs:
            fail(f"docs/deploy.md does not explain {needle}")


def test_tables_take_a_customer_key_and_point_in_time_recovery():
    """Every table: encrypted with TableKmsKeyArn when given (else DynamoDB's
    AWS-owned key, free), point-in-time recovery with
    TablePointInTimeRecovery (off by default: live state, rebuilt by
    reconnecting)."""
    for name, t in templates():
        p = t["Parameters"]
        if (p["TableKmsKeyArn"].get("Default"), p["TablePointInTimeRecovery"].get("Default")) != ("", "false"):
            fail(f"{name}: encryption and recovery options must default to what costs nothing")
        for lid in ("ConnectionsTable", "MediaNodesTable", "ThrottlesTable"):
            props = t["Resources"][lid]["Properties"]
            sse = canon(props.get("SSESpecification"))
            if sse != canon({"Fn::If": ["HasTableKmsKey", {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "TableKmsKeyArn"}}, NO_VALUE]}):
                fail(f"{name} {lid}: SSESpecification {sse}")
            pitr = canon(props.get("PointInTimeRecoverySpecification"))
            if pitr != canon({"PointInTimeRecoveryEnabled": {"Fn::If": ["TablePitr", True, False]}}):
                fail(f"{name} {lid}: PointInTimeRecoverySpecification {pitr}")
        if canon(t["Conditions"]["TablePitr"]) != {"Fn::Equals": ["${TablePointInTimeRecovery}", "true"]}:
            fail(f"{name}: TablePitr is {t['Conditions']['TablePitr']}")


def test_functions_that_open_mongodb_take_a_reserved_concurrency():
    """MongoDbFunctionConcurrency caps each function whose environment has
    MONGODB_URI (0, the default: not reserved); the others are never capped
    by it; docs/deploy.md has the Atlas arithmetic next to it."""
    for name, t in templates():
        if canon(t["Parameters"]["MongoDbFunctionConcurrency"].get("Default")) != "0":
            fail(f"{name}: MongoDbFunctionConcurrency must default to 0 (not reserved)")
        capped = set()
        for lid, fn in functions(t).items():
            props = fn["Properties"]
            reserved = props.get("ReservedConcurrentExecutions")
            opens_mongo = "MONGODB_URI" in props.get("Environment", {}).get("Variables", {})
            if binary_of(lid) == "ws-sweep":
                # One sweep at a time, whatever the parameter: one pool.
                if reserved != 1:
                    fail(f"{name} {lid}: ReservedConcurrentExecutions {reserved}, not 1")
                continue
            if opens_mongo:
                want = canon({"Fn::If": ["ReserveMongoDbConcurrency", {"Ref": "MongoDbFunctionConcurrency"}, NO_VALUE]})
                if canon(reserved) != want:
                    fail(f"{name} {lid}: ReservedConcurrentExecutions {reserved}")
                capped.add(binary_of(lid))
            elif reserved is not None:
                fail(f"{name} {lid}: reserved concurrency on a function without MongoDB")
        if capped != {"ws-default", "ws-disconnect", "http-api"}:
            fail(f"{name}: capped {sorted(capped)}")
    docs = (REPO / "docs/deploy.md").read_text()
    section = docs[docs.index("### MongoDB Atlas connections"):]
    if "MongoDbFunctionConcurrency" not in section.split("\n### ")[0]:
        fail("docs/deploy.md's Atlas connection arithmetic does not name MongoDbFunctionConcurrency")


def stack_with(t: dict, truth: dict) -> dict:
    """The resources CloudFormation would create with these conditions."""
    out = {}
    for lid, r in t["Resources"].items():
        if "Condition" in r and not truth.get(r["Condition"], True):
            continue
        out[lid] = resolve_if(r, truth)
    return out


def test_turn_over_tls_on_443_only_when_configured():
    """With TurnTlsDomain: the load balancer's TCP 443 goes to the nodes'
    TLS port, which the security group opens, the nodes may read the
    certificate's secret, and the user data starts TLS there and advertises
    turns:DOMAIN:443; without it, none of that exists."""
    script = user_data(SAM)
    tls_env = re.search(r"cat >> /etc/tincan/media-node.env <<TLS\n(.*?)\nTLS\n", script, re.S)
    if not tls_env:
        fail("the user data never configures TURN over TLS")
    env = dict(line.split("=", 1) for line in tls_env.group(1).splitlines())
    if set(env) != {"TINCAN_TURN_TLS_ADDR", "TINCAN_TURN_TLS_CERT", "TINCAN_TURN_TLS_KEY", "TINCAN_TURN_TLS_NAME"}:
        fail(f"the TLS block sets {sorted(env)}")
    node_port = env["TINCAN_TURN_TLS_ADDR"].rsplit(":", 1)[1]
    if node_port == "$TLS_PORT":
        node_port = re.search(r"^TLS_PORT=(\d+)$", script, re.M).group(1)
    if int(node_port) < 1024:
        fail("the node would need root to bind its TLS port")
    if env["TINCAN_TURN_TLS_NAME"] != "${TurnTlsDomain}:443":
        fail(f"the nodes advertise turns:{env['TINCAN_TURN_TLS_NAME']}, not the domain on 443")
    if "if [ -n '${TurnTlsDomain}' ]" not in script:
        fail("TLS must depend on TurnTlsDomain in the user data")
    reads = env_vars_read(sources_of("tincan-media-node"))
    if not set(env) <= set(reads):
        fail(f"the media node does not read {sorted(set(env) - set(reads))}")
    for name, t in templates():
        on, off = stack_with(t, {"HasTurnTls": True}), stack_with(t, {"HasTurnTls": False})
        listener = on.get("TurnTlsListener", {}).get("Properties", {})
        if (listener.get("Protocol"), canon(listener.get("Port"))) != ("TCP", "443"):
            fail(f"{name}: no TCP 443 listener with TurnTlsDomain ({listener})")
        group = on["TurnTlsTargetGroup"]["Properties"]
        if canon(group["Port"]) != node_port or group["Protocol"] != "TCP":
            fail(f"{name}: 443 goes to {group['Protocol']} {group['Port']}, the nodes listen on TCP {node_port}")
        if "${TurnTlsTargetGroup}" not in canon(on["MediaNodeGroup"]["Properties"]["TargetGroupARNs"]):
            fail(f"{name}: the nodes are not registered behind 443")
        ingress = {(r["IpProtocol"], canon(r["FromPort"])) for r in on["MediaNodeSecurityGroup"]["Properties"]["SecurityGroupIngress"]}
        if ("tcp", node_port) not in ingress:
            fail(f"{name}: the security group does not open TCP {node_port}")
        grants = [st for lid, st in statements({"Resources": on}) if lid == "MediaNodeRole" and st.get("Sid") == "TlsCertificate"]
        if not grants or "${TurnTlsCertificateSecret}" not in grants[0]["Resource"][0]:
            fail(f"{name}: the nodes may not read the certificate's secret")
        if {"TurnTlsListener", "TurnTlsTargetGroup"} & set(off):
            fail(f"{name}: TLS resources exist without TurnTlsDomain")
        if ("tcp", node_port) in {(r["IpProtocol"], canon(r["FromPort"])) for r in off["MediaNodeSecurityGroup"]["Properties"]["SecurityGroupIngress"]}:
            fail(f"{name}: TCP {node_port} is open without TurnTlsDomain")
        if any(st.get("Sid") == "TlsCertificate" for lid, st in statements({"Resources": off})):
            fail(f"{name}: the nodes may read a certificate secret without TurnTlsDomain")


def test_files_named_in_comments_and_docs_exist():
    """A comment or doc that sends the reader to a file names one that exists."""
    sources = ["template.yaml", "README.md", *[str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")]]
    for folder in ("infra/lib", "infra/bin", "tests/infra"):
        sources += [str(p.relative_to(REPO)) for p in sorted((REPO / folder).iterdir()) if p.is_file()]
    path = re.compile(r"\b((?:tests|infra|docs|crates|functions|media-node)/[\w./-]+\.(?:py|sh|rs|ts|md))\b")
    missing = []
    for rel in sources:
        for named in set(path.findall((REPO / rel).read_text())):
            if not (REPO / named).exists():
                missing.append(f"{rel} names {named}")
    if missing:
        fail("; ".join(sorted(missing)))


# ------------------------------------------------------------------ runner


# ------------------------------------------------------------------ web app


def test_web_bucket_is_private():
    """Public access blocked, owner-enforced, encrypted, TLS only; only this
    stack's distribution reads, through its origin access control."""
    for name, t in templates():
        bucket = t["Resources"]["WebBucket"]
        props = bucket["Properties"]
        block = props.get("PublicAccessBlockConfiguration", {})
        for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if canon(block.get(key)) != "true":
                fail(f"{name}: WebBucket {key} is not true")
        if canon(props.get("OwnershipControls")) != canon({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}):
            fail(f"{name}: WebBucket allows ACLs")
        if "WebsiteConfiguration" in props or "AccessControl" in props:
            fail(f"{name}: WebBucket is a public website")
        if not props.get("BucketEncryption"):
            fail(f"{name}: WebBucket not encrypted")
        policies = [r for r in resources(t, "AWS::S3::BucketPolicy").values() if canon(r["Properties"]["Bucket"]) == "${WebBucket}"]
        if len(policies) != 1:
            fail(f"{name}: {len(policies)} policies on WebBucket")
        allowed = [canon(st) for st in policies[0]["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
        for st in allowed:
            if st["Principal"] != {"Service": "cloudfront.amazonaws.com"} and st["Principal"] != {"Service": ["cloudfront.amazonaws.com"]}:
                fail(f"{name}: WebBucket readable by {st['Principal']}")
            if st["Action"] != ["s3:GetObject"]:
                fail(f"{name}: CloudFront may {st['Action']} on WebBucket")
            source = st.get("Condition", {}).get("StringEquals", {}).get("AWS:SourceArn", "")
            if "distribution/${AppDistribution}" not in source:
                fail(f"{name}: WebBucket readable by any distribution ({source!r})")
        denies = [canon(st) for st in policies[0]["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
        if not any(st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" for st in denies):
            fail(f"{name}: WebBucket takes plain HTTP")


def csp(t: dict) -> dict:
    text = canon(t["Resources"]["AppResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
                 ["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    return {d.split()[0]: d.split()[1:] for d in (x.strip() for x in text.split(";")) if d}


def test_cloudfront_with_origin_access_control_and_security_headers():
    for name, t in templates():
        dist = t["Resources"]["AppDistribution"]["Properties"]["DistributionConfig"]
        origins = dist["Origins"]
        if len(origins) != 1 or canon(origins[0]["DomainName"]) != "${WebBucket.RegionalDomainName}":
            fail(f"{name}: AppDistribution's origin is not WebBucket")
        if canon(origins[0].get("OriginAccessControlId")) != "${AppOriginAccessControl.Id}":
            fail(f"{name}: no origin access control")
        if canon(origins[0].get("S3OriginConfig")) != {"OriginAccessIdentity": ""}:
            fail(f"{name}: legacy OAI or custom origin")
        oac = t["Resources"]["AppOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
        if (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) != ("s3", "always", "sigv4"):
            fail(f"{name}: OAC does not sign every request")
        behaviors = [dist["DefaultCacheBehavior"], *dist.get("CacheBehaviors", [])]
        for b in behaviors:
            if b["ViewerProtocolPolicy"] != "redirect-to-https":
                fail(f"{name}: {b.get('PathPattern', 'default')} serves plain HTTP")
            if canon(b.get("ResponseHeadersPolicyId")) != "${AppResponseHeadersPolicy}":
                fail(f"{name}: {b.get('PathPattern', 'default')} without the security headers")
        settings = [b for b in behaviors if b.get("PathPattern") == "/settings.json"]
        if not settings or settings[0]["CachePolicyId"] != "4135ea2d-6df8-44a3-9df3-4b5a84be39ad":
            fail(f"{name}: /settings.json is cached at the edge")
        if dist.get("DefaultRootObject") != "index.html":
            fail(f"{name}: no index.html at /")
        headers = t["Resources"]["AppResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
        if canon(headers.get("ContentTypeOptions")) != {"Override": "true"}:
            fail(f"{name}: no X-Content-Type-Options")
        if headers.get("ReferrerPolicy", {}).get("ReferrerPolicy") != "no-referrer":
            fail(f"{name}: Referrer-Policy is not no-referrer")
        if headers.get("FrameOptions", {}).get("FrameOption") != "DENY":
            fail(f"{name}: framable")
        policy = csp(t)
        expected = {
            "default-src": ["'self'"],
            "script-src": ["'self'"],
            "style-src": ["'self'"],
            "object-src": ["'none'"],
            "base-uri": ["'none'"],
            "frame-ancestors": ["'none'"],
            # The page's own files, the HTTP API (fetch) and the WebSocket API.
            "connect-src": ["'self'", "${HttpApi.ApiEndpoint}", "wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"],
            # Remote audio plays from WebRTC MediaStreams.
            "media-src": ["'self'", "blob:", "mediastream:"],
        }
        for directive, sources in expected.items():
            if policy.get(directive) != sources:
                fail(f"{name}: CSP {directive} is {policy.get(directive)}, not {sources}")


def test_settings_json_written_from_the_stack():
    """Both tools write settings.json with the HTTP API's endpoint and the
    WebSocket URL (the WebSocketUrl output), into WebBucket, and invalidate
    the distribution."""
    ws_url = canon(SAM["Outputs"]["WebSocketUrl"]["Value"])
    want = {"httpApiUrl": "${HttpApi.ApiEndpoint}", "webSocketUrl": ws_url}
    sam = canon(SAM_WEB["WebDeployment"]["Properties"])
    if sam["Settings"] != want:
        fail(f"template.yaml: settings {sam['Settings']}, not {want}")
    if (sam["Bucket"], sam["DistributionId"]) != ("${WebBucket}", "${AppDistribution}"):
        fail("template.yaml: WebDeployment writes elsewhere")
    if SAM_RAW_WEB[next(k for k in SAM_RAW_WEB if k.startswith("WebContentLayer"))]["Properties"]["ContentUri"] != "web/":
        fail("template.yaml: the layer is not web/")
    code = SAM_RAW_WEB["WebDeployFunction"]["Properties"]["InlineCode"]
    for needle in ('Key="settings.json"', "create_invalidation", 'RequestType"] == "Delete"'):
        if needle not in code:
            fail(f"template.yaml: WebDeployFunction lacks {needle}")
    if CDK is None:
        return
    deploys = [r for r in CDK_WEB.values() if r["Type"] == "Custom::CDKBucketDeployment"]
    if len(deploys) != 1:
        fail(f"CDK: {len(deploys)} BucketDeployments")
    props = deploys[0]["Properties"]
    c = canon(props)
    if (c["DestinationBucketName"], c["DistributionId"], c["DistributionPaths"]) != ("${WebBucket}", "${AppDistribution}", ["/*"]):
        fail("CDK: BucketDeployment writes elsewhere or invalidates nothing")
    if c.get("RetainOnDelete") != "false" or c.get("Prune") != "true":
        fail("CDK: the bucket's files outlive the stack, or old files stay")
    files, settings = {}, None
    for key, markers in zip(props["SourceObjectKeys"], props.get("SourceMarkers", [{}] * len(props["SourceObjectKeys"]))):
        folder = CDK_OUT / f"asset.{key.removesuffix('.zip')}"
        names = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
        files[key] = names
        if names == {"settings.json"}:
            text = (folder / "settings.json").read_text()
            for marker, value in markers.items():
                text = text.replace(marker, json.dumps(canon(value).strip('"')))
            settings = json.loads(text)
    if settings != want:
        fail(f"CDK: settings {settings}, not {want}")
    page = [names for names in files.values() if "index.html" in names]
    if not page or not {"app.js", "app/settings.js", "tincan-client.js"} <= page[0]:
        fail(f"CDK: the page's files are not uploaded ({files})")
    if page and page[0] & {"README.md", "package.json", "tsconfig.json"}:
        fail("CDK: uploads files of web/ that are not the page")


def test_app_url_and_cors_default_to_the_app_origin():
    origin = {"Fn::If": ["HasAppDomain", "https://${AppDomainName}", "https://${AppDistribution.DomainName}"]}
    for name, t in templates():
        app_url = canon(t["Outputs"]["AppUrl"]["Value"])
        if app_url != canon({"Fn::If": ["HasAppDomain", "https://${AppDomainName}/", "https://${AppDistribution.DomainName}/"]}):
            fail(f"{name}: AppUrl is {app_url}")
        if t["Parameters"]["CorsOrigins"].get("Default") != "":
            fail(f"{name}: CorsOrigins defaults to {t['Parameters']['CorsOrigins'].get('Default')!r}, not the app")
        env = canon(t["Resources"]["HttpApiFunction"]["Properties"]["Environment"]["Variables"]["TINCAN_CORS_ORIGINS"])
        if env != canon({"Fn::If": ["HasCorsOrigins", "${CorsOrigins}", origin]}):
            fail(f"{name}: TINCAN_CORS_ORIGINS is {env}, not the app's origin by default")
        dist = t["Resources"]["AppDistribution"]["Properties"]["DistributionConfig"]
        if canon(dist.get("Aliases")) != canon({"Fn::If": ["HasAppDomain", ["${AppDomainName}"], "${AWS::NoValue}"]}):
            fail(f"{name}: the custom domain is not optional")
        cert = dist.get("ViewerCertificate", {}).get("Fn::If", [None, {}, {}])
        if not (cert[0] == "HasAppDomain"
                and canon(cert[1]).get("AcmCertificateArn") == "${AppCertificateArn}"
                and canon(cert[2]) == {"CloudFrontDefaultCertificate": "true"}):
            fail(f"{name}: certificate not the ACM one with the domain, CloudFront's without: {cert}")
        if "us-east-1" not in t["Parameters"]["AppCertificateArn"]["AllowedPattern"]:
            fail(f"{name}: AppCertificateArn may be outside us-east-1")


def test_web_delivery_helpers_touch_only_the_app():
    """The deploy-time helpers' IAM names only the web bucket, the
    distribution (and, for CDK, its own assets bucket)."""
    for name, web in (("template.yaml", SAM_WEB), ("CDK", CDK_WEB)):
        if name == "CDK" and CDK is None:
            continue
        found = False
        for lid, r in web.items():
            docs = []
            if r["Type"] == "AWS::IAM::Role":
                docs = [p["PolicyDocument"] for p in r["Properties"].get("Policies", [])]
            elif r["Type"] == "AWS::IAM::Policy":
                docs = [r["Properties"]["PolicyDocument"]]
            for doc in docs:
                for st in resolve_if(doc["Statement"]):
                    st = canon(st)
                    found = True
                    for res in st["Resource"]:
                        # CDK's BucketDeployment grants its invalidations on *.
                        if name == "CDK" and res == "*" and set(st["Action"]) <= {"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"}:
                            continue
                        if not ("${WebBucket" in res or "${AppDistribution}" in res or "cdk-hnb659fds-assets" in res):
                            fail(f"{name} {lid}: {st['Action']} on {res}")
        if not found:
            fail(f"{name}: no IAM statements for the web delivery")


def test_only_the_http_api_reads_and_writes_the_throttles_table():
    """Failed-login and registration counts (crates/store/src/dynamo/throttle.rs):
    the http-api function names the table in TINCAN_THROTTLES_TABLE, and only
    its role may touch it, with GetItem and PutItem only."""
    for name, t in templates():
        env = t["Resources"]["HttpApiFunction"]["Properties"]["Environment"]["Variables"]
        if canon(env.get("TINCAN_THROTTLES_TABLE")) != "${ThrottlesTable}":
            fail(f"{name}: HttpApiFunction TINCAN_THROTTLES_TABLE is {env.get('TINCAN_THROTTLES_TABLE')}")
        grants = {}
        for lid, st in statements(t):
            if any("${ThrottlesTable" in r for r in st["Resource"]):
                grants.setdefault(lid, set()).update(st["Action"])
        if grants != {"HttpApiRole": {"dynamodb:GetItem", "dynamodb:PutItem"}}:
            fail(f"{name}: throttles table grants {grants}")


def test_the_sweep_runs_on_its_schedule():
    """ws-sweep (WsApi::sweep) runs every SweepSchedule: an EventBridge rule
    invokes its alias live, and only that rule may; it pushes `peer-left`
    through our WebSocket API's Management API (a scheduled event names no
    endpoint), may scan the connections table, and gets a minute."""
    for name, t in templates():
        if canon(t["Parameters"]["SweepSchedule"].get("Default")) != "rate(1 minute)":
            fail(f"{name}: SweepSchedule does not default to every minute")
        rules = resources(t, "AWS::Events::Rule")
        if list(rules) != ["SweepRule"]:
            fail(f"{name}: rules {sorted(rules)}")
        rule = canon(rules["SweepRule"]["Properties"])
        if rule["ScheduleExpression"] != "${SweepSchedule}" or rule["State"] != "ENABLED":
            fail(f"{name}: SweepRule {rule}")
        if [tg["Arn"] for tg in rule["Targets"]] != ["${WsSweepFunctionAliaslive}"]:
            fail(f"{name}: SweepRule invokes {rule['Targets']}, not ws-sweep's alias live")
        perms = {lid: canon(p["Properties"]) for lid, p in resources(t, "AWS::Lambda::Permission").items()
                 if canon(p["Properties"]["FunctionName"]) == "${WsSweepFunctionAliaslive}"}
        want = {"Action": ["lambda:InvokeFunction"], "FunctionName": "${WsSweepFunctionAliaslive}",
                "Principal": "events.amazonaws.com", "SourceArn": "${SweepRule.Arn}"}
        if list(perms.values()) != [want]:
            fail(f"{name}: ws-sweep may be invoked by {perms}")
        fn = t["Resources"]["WsSweepFunction"]["Properties"]
        if binary_of("WsSweepFunction") != "ws-sweep" or fn.get("Timeout") != 60:
            fail(f"{name}: WsSweepFunction runs {binary_of('WsSweepFunction')} for {fn.get('Timeout')} s")
        endpoint = canon(fn["Environment"]["Variables"].get("TINCAN_WS_ENDPOINT"))
        if endpoint != "https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}":
            fail(f"{name}: ws-sweep pushes through {endpoint}")
        scans = [st for lid, st in statements(t) if "dynamodb:Scan" in st["Action"]]
        if [st["Resource"] for st in scans] != [["${ConnectionsTable.Arn}"]]:
            fail(f"{name}: Scan granted on {[st['Resource'] for st in scans]}")


def main() -> int:
    return run_tests(globals(), "infra-python")


if __name__ == "__main__":
    sys.exit(main())

