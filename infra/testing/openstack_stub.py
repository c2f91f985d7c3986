"""A schema-only stand-in for Terraform's OpenStack provider, for offline ``init`` / ``validate`` / ``test``.

The real provider cannot be downloaded here, and Terraform needs a provider's schema before it will validate
or test a configuration that uses it, even with ``mock_provider``. This program speaks the Terraform plugin
protocol (v6, through the PyPI ``tf`` framework) and serves exactly the schema recorded from the provider's
source in ``../shared/schemas/terraform-provider-openstack/schema.json``: every resource and data source with
its attributes, types, required/optional/computed flags and nested blocks (list, set and single nesting).
Terraform itself then checks the configuration against it, so a misspelled argument, a missing required one
or a wrong type fails with file and line, as it would with the real provider.

It does no create, read, update or delete: planning or applying against it (instead of ``mock_provider``)
fails with an error naming the stub. It accepts any provider configuration (the real provider's validators
are Go code and not in the schema: see the schema's PROVENANCE.md).

Runs in its own virtual environment (``requirements/infra-tools.txt``: ``tf`` needs protobuf < 6):

    openstack_stub.py install --schema SCHEMA --mirror DIR   # write the filesystem mirror + a CLI config
    openstack_stub.py serve --schema SCHEMA                  # what Terraform starts (through the mirror)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

PROVIDER_ADDRESS = "registry.terraform.io/terraform-provider-openstack/openstack"
# The schema is v3.4.0's plus one optional router argument (PROVENANCE.md: "Difference from v3.4.0").
PROVIDER_VERSION = "3.4.0"
_NESTING = {"single": 1, "list": 2, "set": 3, "map": 4, "group": 5}
_STUB_ERROR = (
    "schema-only OpenStack stub: this provider only carries the schema; plan and apply need the real "
    "provider (or a mock_provider block in a terraform test)"
)


def _pb() -> Any:
    from tf.gen import tfplugin_pb2

    return tfplugin_pb2


def _attribute(name: str, spec: dict[str, Any]) -> Any:
    pb = _pb()
    return pb.Schema.Attribute(
        name=name,
        type=json.dumps(spec["type"], separators=(",", ":")).encode(),
        description=spec.get("description", ""),
        required=bool(spec.get("required")),
        optional=bool(spec.get("optional")),
        computed=bool(spec.get("computed")),
        sensitive=bool(spec.get("sensitive")),
        deprecated=bool(spec.get("deprecated")),
        description_kind=pb.PLAIN,
    )


def block_to_pb(block: dict[str, Any]) -> Any:
    """One JSON schema block (``terraform providers schema -json`` format) as a tfplugin6 ``Schema.Block``."""
    pb = _pb()
    nested = []
    for type_name, spec in sorted(block.get("block_types", {}).items()):
        mode = spec["nesting_mode"]
        if mode not in _NESTING:
            raise ValueError(f"block {type_name!r}: unknown nesting_mode {mode!r}")
        nested.append(
            pb.Schema.NestedBlock(
                type_name=type_name,
                block=block_to_pb(spec["block"]),
                nesting=_NESTING[mode],
                min_items=int(spec.get("min_items", 0)),
                max_items=int(spec.get("max_items", 0)),
            )
        )
    return pb.Schema.Block(
        attributes=[_attribute(name, spec) for name, spec in sorted(block.get("attributes", {}).items())],
        block_types=nested,
        description=block.get("description", ""),
        description_kind=pb.PLAIN,
        deprecated=bool(block.get("deprecated")),
    )


def schema_response(schema_path: Path) -> Any:
    """The ``GetProviderSchema`` response for the provider recorded in ``schema_path``."""
    pb = _pb()
    document = json.loads(schema_path.read_text())
    try:
        provider = document["provider_schemas"][PROVIDER_ADDRESS]
    except KeyError as exc:
        raise ValueError(f"{schema_path}: no schema for {PROVIDER_ADDRESS}") from exc

    def schema(entry: dict[str, Any]) -> Any:
        return pb.Schema(version=int(entry.get("version", 0)), block=block_to_pb(entry["block"]))

    return pb.GetProviderSchema.Response(
        provider=schema(provider["provider"]),
        provider_meta=pb.Schema(version=0, block=pb.Schema.Block()),
        resource_schemas={name: schema(s) for name, s in provider.get("resource_schemas", {}).items()},
        data_source_schemas={name: schema(s) for name, s in provider.get("data_source_schemas", {}).items()},
    )


def _servicer_class(schema_path: Path) -> type:
    from tf.provider import ProviderServicer

    pb = _pb()
    response = schema_response(schema_path)

    def refuse(response_type: Any) -> Any:
        diagnostic = pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=_STUB_ERROR)
        return response_type(diagnostics=[diagnostic])

    class SchemaOnlyServicer(ProviderServicer):  # type: ignore[misc]
        def GetProviderSchema(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method names)
            return response

        def ValidateProviderConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.ValidateProviderConfig.Response()

        def ValidateResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.ValidateResourceConfig.Response()

        def ValidateDataResourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.ValidateDataResourceConfig.Response()

        def ConfigureProvider(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.ConfigureProvider.Response()

        def PlanResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
            return refuse(pb.PlanResourceChange.Response)

        def ApplyResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
            return refuse(pb.ApplyResourceChange.Response)

        def ReadResource(self, request: Any, context: Any) -> Any:  # noqa: N802
            return refuse(pb.ReadResource.Response)

        def ReadDataSource(self, request: Any, context: Any) -> Any:  # noqa: N802
            return refuse(pb.ReadDataSource.Response)

        def ImportResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
            return refuse(pb.ImportResourceState.Response)

    return SchemaOnlyServicer


class _NoModels:
    """The ``tf`` framework's provider interface, with nothing behind it (the servicer answers instead)."""

    def get_model_prefix(self) -> str:
        return "openstack_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_data_sources(self) -> list[type]:
        return []

    def get_resources(self) -> list[type]:
        return []

    def get_functions(self) -> list[type]:
        return []


def serve(schema_path: Path) -> None:
    """Serve the schema over the plugin protocol until Terraform stops the provider."""
    import tf.provider
    from tf.runner import run_provider

    tf.provider.ProviderServicer = _servicer_class(schema_path)  # run_provider builds one of these
    run_provider(_NoModels(), [sys.argv[0]])


def install(schema_path: Path, mirror: Path) -> Path:
    """Write the unpacked filesystem mirror and a CLI config selecting it; returns the CLI config's path."""
    schema_response(schema_path)  # fail here, not inside Terraform, when the schema is unusable
    host, namespace, name = PROVIDER_ADDRESS.split("/")
    plugin_dir = mirror / host / namespace / name / PROVIDER_VERSION / "linux_amd64"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    launcher = plugin_dir / f"terraform-provider-{name}_v{PROVIDER_VERSION}"
    command = [sys.executable, str(Path(__file__).resolve()), "serve", "--schema", str(schema_path.resolve())]
    launcher.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(part) for part in command) + "\n")
    launcher.chmod(0o755)
    config = mirror.parent / "terraformrc"
    config.write_text(
        "# written by infra/testing/openstack_stub.py: the OpenStack provider is the schema-only stub\n"
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror.resolve()}"\n'
        f'    include = ["{PROVIDER_ADDRESS}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{PROVIDER_ADDRESS}"]\n  }}\n'
        "}\n"
    )
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("serve", "install"):
        p = sub.add_parser(command)
        p.add_argument("--schema", type=Path, required=True, help="provider schema JSON")
        if command == "install":
            p.add_argument("--mirror", type=Path, required=True, help="filesystem mirror folder to write")
    args = parser.parse_args(argv)
    if not args.schema.is_file():
        parser.error(f"--schema: no such file: {args.schema}")
    if args.command == "serve":
        serve(args.schema)
        return 0
    print(install(args.schema, args.mirror))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
