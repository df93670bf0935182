"""Lints GitHub workflow files offline, with what tests/py/requirements.txt installs.

    target/pyenv/bin/python tests/lint_workflows.py [FILE ...]   (default: .github/workflows/*.yml)

1. The GitHub-workflow JSON schema vendored in check-jsonschema (keys, types, events).
2. Checks in the style of actionlint that a schema cannot make: `needs` names jobs
   that exist (and no cycle), `${{ }}` expressions use known contexts and functions,
   `needs.X` / `steps.X` / `matrix.X` refer to a needed job, an earlier step id and
   a matrix key, `uses:` carries a ref, known actions get only their own inputs,
   `runs-on` is a GitHub-hosted label.
3. shellcheck over every bash `run:` script, with each `${{ }}` replaced by a
   placeholder of the same length, as actionlint does.

Prints one `file:line: problem` per finding and exits 1 when there is any.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

from ruamel.yaml import YAML

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTEXTS = {"github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy", "matrix", "needs",
            "inputs"}
# Function names are case-insensitive in GitHub expressions (toJson = toJSON).
FUNCTIONS = {"contains", "startswith", "endswith", "format", "join", "tojson", "fromjson", "hashfiles", "success",
             "always", "cancelled", "failure", "case"}
LITERALS = {"true", "false", "null"}
RUNNER_LABELS = re.compile(r"(ubuntu-(latest|2[2-4]\.04(-arm)?)|windows-(latest|202[2-5])|"
                           r"macos-(latest|1[3-5](-large|-xlarge)?)|self-hosted)$")
# Inputs of the actions this project uses (from their action.yml), so a typo in a
# `with:` key is caught here and not on the first tagged release.
ACTION_INPUTS = {
    "actions/checkout": {"repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
                         "persist-credentials", "path", "clean", "filter", "sparse-checkout",
                         "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
                         "submodules", "set-safe-directory", "github-server-url"},
    "actions/setup-python": {"python-version", "python-version-file", "cache", "architecture", "check-latest",
                             "token", "cache-dependency-path", "update-environment", "allow-prereleases",
                             "freethreaded", "pip-version", "pip-install"},
    "dtolnay/rust-toolchain": {"toolchain", "targets", "target", "components"},
    "actions/upload-artifact": {"name", "path", "if-no-files-found", "retention-days", "compression-level",
                                "overwrite", "include-hidden-files"},
    "actions/download-artifact": {"name", "path", "pattern", "merge-multiple", "github-token", "repository",
                                  "run-id", "artifact-ids"},
}
# As actionlint: sourcing, constant-expression and unassigned-variable checks do
# not fit scripts whose expressions were replaced by placeholders.
SHELLCHECK_EXCLUDES = "SC1091,SC2194,SC2050,SC2154,SC2157"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
IDENTIFIER_PATH = re.compile(r"(?<![\w.\-])([A-Za-z_][\w\-]*)((?:\.[\w\-*]+|\[[^\]]*\])*)\s*(\()?")


def line_of(node, key):
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return getattr(getattr(node, "lc", None), "line", -1) + 1


class Linter:
    def __init__(self, path):
        self.path = path
        self.findings = []

    def report(self, line, message):
        shown = os.path.relpath(self.path, REPO) if self.path.startswith(REPO + os.sep) else self.path
        self.findings.append("%s:%d: %s" % (shown, line, message))

    def run(self):
        with open(self.path, encoding="utf-8") as f:
            workflow = YAML(typ="rt").load(f)
        if not isinstance(workflow, dict) or not isinstance(workflow.get("jobs"), dict):
            self.report(1, "no jobs: mapping")
            return self.findings
        jobs = workflow["jobs"]
        self.check_needs(jobs)
        default_shell = (((workflow.get("defaults") or {}).get("run") or {}).get("shell")) or "bash"
        self.check_expressions({k: v for k, v in workflow.items() if k != "jobs"}, scope={})
        for name, job in jobs.items():
            if isinstance(job, dict):
                self.check_job(name, job, default_shell)
        return self.findings

    def check_needs(self, jobs):
        graph = {}
        for name, job in jobs.items():
            needs = job.get("needs", []) if isinstance(job, dict) else []
            needs = [needs] if isinstance(needs, str) else list(needs)
            graph[name] = needs
            for needed in needs:
                if needed not in jobs:
                    self.report(line_of(job, "needs"), "job %s needs %r, which is not a job here" % (name, needed))
        visiting, done = set(), set()

        def visit(name, trail):
            if name in done or name not in graph:
                return
            if name in visiting:
                self.report(line_of(jobs[name], "needs"), "jobs need each other in a cycle: " + " -> ".join(trail))
                return
            visiting.add(name)
            for needed in graph[name]:
                visit(needed, trail + [needed])
            visiting.discard(name)
            done.add(name)

        for name in graph:
            visit(name, [name])

    def check_job(self, name, job, default_shell):
        runs_on = job.get("runs-on")
        labels = [runs_on] if isinstance(runs_on, str) else list(runs_on or [])
        for label in labels:
            if "${{" not in str(label) and not RUNNER_LABELS.match(str(label)):
                self.report(line_of(job, "runs-on"), "job %s: unknown runner label %r" % (name, label))
        shell = (((job.get("defaults") or {}).get("run") or {}).get("shell")) or default_shell
        matrix = (job.get("strategy") or {}).get("matrix")
        needs = job.get("needs", [])
        scope = {"needs": {needs} if isinstance(needs, str) else set(needs),
                 "matrix": set(matrix) if isinstance(matrix, dict) else None, "steps": set()}
        for key in ("env", "if", "runs-on", "strategy", "environment", "outputs", "with", "container"):
            if key in job:
                self.check_expressions(job[key], scope, line_of(job, key))
        for step in job.get("steps") or []:
            if not isinstance(step, dict):
                continue
            self.check_expressions(step, scope, line_of(step, next(iter(step), None)))
            self.check_uses(step)
            if "run" in step and (step.get("shell") or shell) == "bash":
                self.shellcheck(step, name)
            if "id" in step:
                scope["steps"].add(str(step["id"]))

    def check_uses(self, step):
        uses = step.get("uses")
        if uses is None:
            return
        uses = str(uses)
        if uses.startswith(("./", "docker://")):
            return
        action, _, ref = uses.partition("@")
        if not ref or action.count("/") < 1:
            self.report(line_of(step, "uses"), "uses: %r needs owner/repo@ref" % uses)
            return
        known = ACTION_INPUTS.get(action)
        for key in (step.get("with") or {}) if known is not None else ():
            if key not in known:
                self.report(line_of(step["with"], key), "%s has no input %r" % (action, key))

    def check_expressions(self, node, scope, line=None):
        """Every ${{ }} in node (and bare `if:` conditions) against the contexts in scope."""
        if isinstance(node, dict):
            for key, value in node.items():
                here = line_of(node, key)
                if key == "if" and isinstance(value, str) and "${{" not in value:
                    self.check_expression(value, scope, here)
                else:
                    self.check_expressions(value, scope, here)
        elif isinstance(node, list):
            for item in node:
                self.check_expressions(item, scope, line)
        elif isinstance(node, str):
            for match in EXPRESSION.finditer(node):
                # A multi-line value is a block scalar: its text starts on the next line.
                offset = 1 + node.count("\n", 0, match.start()) if "\n" in node else 0
                self.check_expression(match.group(1), scope, (line or 1) + offset)

    def check_expression(self, text, scope, line):
        text = STRING_LITERAL.sub("''", text)
        for match in IDENTIFIER_PATH.finditer(text):
            name, path, call = match.groups()
            if call:
                if name.lower() not in FUNCTIONS:
                    self.report(line, "unknown function %s() in ${{ %s }}" % (name, text.strip()))
                continue
            if name in LITERALS or re.fullmatch(r"\d[\w.]*", name):
                continue
            if name.lower() not in CONTEXTS:
                self.report(line, "unknown context %r in ${{ %s }}" % (name, text.strip()))
                continue
            member = path.split(".")[1] if path.startswith(".") else None
            name = name.lower()
            allowed = scope.get(name)
            if member is None or allowed is None and name != "matrix":
                continue
            if name == "matrix" and allowed is None:
                self.report(line, "matrix.%s used in a job with no strategy.matrix" % member)
            elif member not in allowed:
                what = {"needs": "a job in this job's needs", "steps": "the id of an earlier step",
                        "matrix": "a key of strategy.matrix"}[name]
                self.report(line, "%s.%s: %r is not %s" % (name, member, member, what))

    def shellcheck(self, step, job_name):
        script = EXPRESSION.sub(lambda m: "_" * len(m.group(0)), str(step["run"]))
        result = subprocess.run([shellcheck_exe(), "--norc", "-s", "bash", "-f", "gcc", "-e", SHELLCHECK_EXCLUDES,
                                 "-"], input=script, capture_output=True, text=True)
        start = line_of(step, "run") + (0 if "\n" not in str(step["run"]) else 1)
        for finding in result.stdout.splitlines():
            match = re.match(r"-:(\d+):\d+: (.*)", finding)
            if match:
                where = start + int(match.group(1)) - 1
                self.report(where, "job %s, run: script: shellcheck: %s" % (job_name, match.group(2)))
        if result.returncode not in (0, 1) or (result.returncode == 1 and not result.stdout.strip()):
            self.report(start, "shellcheck failed: %s" % result.stderr.strip())


def shellcheck_exe():
    beside_python = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    return beside_python if os.path.isfile(beside_python) else shutil.which("shellcheck") or "shellcheck"


def schema_findings(paths):
    """check-jsonschema against its vendored GitHub-workflow schema (no network)."""
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             "--output-format", "text", *paths], capture_output=True, text=True)
    if result.returncode == 0:
        return []
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return ["schema: " + line for line in lines if not line.startswith("Schema validation errors")]


def lint(paths):
    findings = schema_findings(paths)
    for path in paths:
        findings += Linter(path).run()
    return findings


def main(argv):
    paths = argv or sorted(glob.glob(os.path.join(REPO, ".github", "workflows", "*.yml")))
    if not paths:
        print("lint_workflows.py: error: no workflow files given or found", file=sys.stderr)
        return 2
    findings = lint([os.path.abspath(p) for p in paths])
    for finding in findings:
        print(finding)
    print("lint_workflows.py: %d workflow file(s), %d finding(s)" % (len(paths), len(findings)))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
