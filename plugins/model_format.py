"""Builtin plugin: the base model (file, diffusers folder or repo id), --vae, --network_weights,
and the tokenizer sd-scripts always fetches from the Hub."""

from __future__ import annotations

from dataclasses import replace

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

URL_PREFIXES = ("http://", "https://", "hf://")


def _hub_version(ctx):
    from lora_doctor.hub.token import parse_version

    return parse_version((ctx.facts.get().get("packages") or {}).get("huggingface_hub"))


def login_command(ctx) -> str:
    """The login command of the target's huggingface_hub (a new token, so --force on 1.x)."""
    from lora_doctor.hub.token import login_command as command

    return command(_hub_version(ctx))


def download_command(ctx, repo: str, files: str = "") -> str:
    """`hf download …` or `huggingface-cli download …`, whichever the target's huggingface_hub has."""
    version = _hub_version(ctx)
    tool = "huggingface-cli" if version is not None and version < (0, 34) else "hf"
    return f"{tool} download {repo}" + (f" {files}" if files else "")


def check_model(ctx):
    """The base model: exists, is readable, is what the script and --v2 expect."""
    yield from base_model(ctx, ctx.model)
    yield from side_file(ctx, "vae", "VAE", "model.vae_not_found")
    yield from side_file(ctx, "network_weights", "network weights file", "model.network_weights_not_found")


def base_model(ctx, value: str):
    from lora_doctor.launch.command import resolve_path
    from lora_doctor.checkpoint.inspect import fit_findings, inspect_file, inspect_folder, looks_like_path, not_found

    value = value.strip()
    if value.lower().startswith(URL_PREFIXES):
        yield url_finding(value)
        return
    path = resolve_path(value, ctx.cwd)
    if path.is_file():
        findings, kind = inspect_file(path, ctx)
    elif path.is_dir():
        findings, kind = inspect_folder(path, ctx)
    elif looks_like_path(value) or path.is_symlink() or ("/" in value and path.parent.is_dir()):
        yield not_found(value, path, ctx, "base model", "model.invalid_model_path_or_repo_id",
                        "pretrained_model_name_or_path")
        return
    else:
        yield from repo_model(ctx, value)
        return
    yield from findings
    if kind is not None:
        yield from fit_findings(kind, ctx, path.name)


def url_finding(value: str) -> Finding:
    from urllib.parse import urlsplit

    parts = [p for p in urlsplit(value).path.split("/") if p]
    repo = "/".join(parts[:2]) if len(parts) >= 2 and "huggingface" in value else ""
    fix = "Download the file and pass its local path"
    if repo:
        fix += f", or pass the repo id {repo} (a diffusers repo)"
    return Finding(Severity.ERROR, f"the base model is a web address: {value}",
                   detail="sd-scripts takes a local file, a local diffusers folder or a Hub repo id, not a URL.",
                   fix=fix + ".", cause="model.invalid_model_path_or_repo_id")


def repo_model(ctx, repo: str):
    from lora_doctor.hub import repo as hub_repo
    from lora_doctor.checkpoint.inspect import fit_findings, inspect_folder
    from lora_doctor.launch.edit import corrected

    problem = hub_repo.repo_id_problem(repo)
    if problem:
        yield Finding(Severity.ERROR, f"the base model '{repo}' is neither an existing path nor a valid repo id",
                      detail=f"{problem}; working directory: {ctx.cwd}",
                      fix="Pass the full path of the model file, or a Hub repo id such as "
                          "stable-diffusion-v1-5/stable-diffusion-v1-5.",
                      cause="model.invalid_model_path_or_repo_id")
        return
    replacement = hub_repo.removed_replacement(repo)
    if replacement:
        yield Finding(Severity.ERROR, f"the Hub repo {repo} was removed by its owner and cannot be downloaded",
                      detail="A token or logging in does not help.",
                      fix=f"Use {replacement} (the same weights) or a local .safetensors file.",
                      fix_command=corrected(ctx, [("pretrained_model_name_or_path", replacement)]),
                      cause="model.hf_repo_removed")
        return
    snapshot = hub_repo.cached_snapshot(ctx.env, repo)
    if snapshot is not None and not (snapshot / "model_index.json").is_file():
        snapshot = None  # only some files of the repo were fetched (e.g. a tokenizer)
    if snapshot is not None:
        findings, kind = inspect_folder(snapshot, ctx)
        if all(f.severity == Severity.OK for f in findings):
            yield Finding(Severity.OK, f"{repo} is in the Hugging Face cache ({snapshot})",
                          facts={"snapshot": str(snapshot)})
        elif ctx.training_offline:
            yield from findings
        else:  # online, from_pretrained fetches what the cache lacks
            for f in findings:
                yield replace(f, severity=min(f.severity, Severity.WARN),
                              summary=f.summary + " (online, the missing files download on the first run)")
        if kind is not None:
            yield from fit_findings(kind, ctx, repo)
    if ctx.is_offline:
        if snapshot is None:  # an error only when training is offline too (Context.unverified_severity)
            yield Finding(ctx.unverified_severity(), f"{repo} is not in the Hugging Face cache and the Hub is off "
                          + ("(offline mode)" if ctx.training_offline else "(--offline): not checked"),
                          fix="Download it once while online, or pass a local model file.",
                          fix_command=download_command(ctx, repo))
        return
    yield from online_repo(ctx, repo, cached=snapshot is not None)


def online_repo(ctx, repo: str, cached: bool):
    from lora_doctor.hub import repo as hub_repo

    got = hub_repo.model_info(repo, ctx.env)
    facts = {"url": got.url, "seconds": round(got.seconds, 2), "token sent": got.with_token}
    if got.status == "ok":
        note = "" if cached else " (not cached: the first run downloads several GB)"
        yield Finding(Severity.OK if cached else Severity.INFO, f"{repo} exists on the Hub{note}", facts=facts)
    elif got.status in ("gated", "forbidden"):
        yield Finding(Severity.ERROR, f"{repo} is gated and this token has no access" if got.with_token else
                      f"{repo} is gated: it needs a token with access, and none is set",
                      detail=got.message, fix=f"Accept the license at https://huggingface.co/{repo} while logged in, "
                      "then log in here with a token of that account.",
                      fix_command=login_command(ctx), cause="auth.gated_repo_no_access", facts=facts)
    elif got.status in ("bad_token", "unsendable_token"):
        yield Finding(Severity.ERROR, "the Hub rejects the Hugging Face token this machine sends"
                      if got.status == "bad_token" else "the Hugging Face token this machine would send is not "
                      "ASCII: the download fails before it starts", detail=got.message, fix="Replace or remove the token (see the Hugging Face token check).",
                      cause="auth.invalid_token", facts=facts)
    elif got.status == "not_found":
        severity = Severity.WARN if cached else Severity.ERROR
        yield Finding(severity, f"{repo} does not exist on the Hub (deleted, private, renamed or mistyped)",
                      detail=got.message + ("; the cached copy still loads" if cached else ""),
                      fix="Check the repo id on huggingface.co, or pass a local .safetensors file.",
                      cause="model.invalid_model_path_or_repo_id", facts=facts)
    else:  # not cached and no connection: the download in training fails the same way (like the tokenizer)
        no_way = not cached and got.status in ("unreachable", "timeout")
        severity = Severity.INFO if cached else Severity.ERROR if no_way else Severity.WARN
        yield Finding(severity, f"could not ask the Hub about {repo}: {got.status} ({got.message})",
                      detail="" if cached else "It is not in the Hugging Face cache, so training must download it.",
                      fix="" if cached else "Check the network (proxy, firewall), or download the model once, or "
                      "pass a local .safetensors file.", fix_command="" if cached else download_command(ctx, repo),
                      cause=None if cached else "network.hf_hub_unreachable", facts=facts)


def side_file(ctx, option: str, what: str, cause: str):
    """--vae / --network_weights: the file must exist; a readable safetensors should be the right kind."""
    from lora_doctor.checkpoint.inspect import looks_like_path, not_found
    from lora_doctor.checkpoint.kind import classify
    from lora_doctor.checkpoint.safetensors_header import HeaderError, read_header

    value = ctx.option(option)
    if not isinstance(value, str) or not value:
        return
    path = ctx.path_option(option)
    if path.is_dir():
        return  # a diffusers VAE folder
    if not path.exists():
        if option == "vae" and not looks_like_path(value):
            return  # a repo id; loaded with from_pretrained
        yield not_found(value, path, ctx, what, cause, option)
        return
    if path.suffix.lower() != ".safetensors":
        return
    try:
        header = read_header(path)
        kind = classify(header)
    except HeaderError as exc:
        yield Finding(Severity.ERROR, f"--{option} {path.name} is not a valid safetensors file: {exc}",
                      fix="Download the file again.", cause="model.file_corrupt", facts={"path": str(path)})
        return
    if option == "network_weights" and kind.name != "lora":
        yield Finding(Severity.ERROR, f"--network_weights {path.name} is a {kind.label}, not a LoRA",
                      fix="--network_weights takes a LoRA file saved by sd-scripts (to continue training).",
                      cause="model.network_weights_shape_mismatch", facts={"path": str(path)})
    elif option == "network_weights":
        from lora_doctor.checkpoint.inspect import lora_fit_findings

        yield from lora_fit_findings(ctx, path, header)
    elif option == "vae" and kind.name not in ("vae", "component"):
        yield Finding(Severity.WARN, f"--vae {path.name} is a {kind.label}, not a VAE",
                      fix="Pass a VAE file (e.g. sdxl_vae.safetensors) or drop --vae.", facts={"path": str(path)})
    else:
        yield Finding(Severity.OK, f"--{option} {path.name} ({kind.label})", facts={"path": str(path)})


TOKENIZERS = {
    "clip_l": ("openai/clip-vit-large-patch14", ""),
    "sd2": ("stabilityai/stable-diffusion-2", "tokenizer"),
    "bigg": ("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", ""),
}
TOKENIZER_FILES = ("vocab.json", "merges.txt")


def check_tokenizer(ctx):
    """The CLIP tokenizer(s) sd-scripts loads from the Hub even for a local model: cached or reachable."""
    from lora_doctor.checkpoint.kind import script_generation

    gen = script_generation(ctx.script_name)
    if gen == "other":
        yield Finding(Severity.INFO, f"tokenizers of {ctx.script_name}.py are not checked (only SD1.x/2.x/SDXL scripts)")
        return
    names = ["clip_l", "bigg"] if gen == "sdxl" else (["sd2"] if ctx.option("v2") else ["clip_l"])
    for name in names:
        yield from one_tokenizer(ctx, *TOKENIZERS[name])


def _major(version) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _delete_command(folder) -> str:
    from lora_doctor.launch.edit import quote, shell_platform

    if shell_platform() == "win32":
        return f'rmdir /s /q "{folder}"'
    return f"rm -rf {quote(str(folder))}"


def cached_tokenizer(ctx, local, label: str) -> Finding:
    """A --tokenizer_cache_dir folder sd-scripts will load with CLIPTokenizer.from_pretrained: does
    the installed transformers read what is in it? transformers 4's CLIPTokenizer needs vocab.json
    and merges.txt; a folder saved by transformers 5 holds tokenizer.json only."""
    facts = {"folder": str(local)}
    delete = ("Delete the folder: sd-scripts downloads the tokenizer again (online) and saves it with the "
              "installed transformers.")
    if not local.is_dir():
        return Finding(Severity.ERROR, f"tokenizer {label}: {local} in --tokenizer_cache_dir is a file, not a folder",
                       fix="Delete it, or point --tokenizer_cache_dir elsewhere.", fix_command=_delete_command(local),
                       facts=facts)
    try:
        names = {p.name for p in local.iterdir()}
    except OSError as exc:
        return Finding(Severity.ERROR, f"tokenizer {label}: {local} cannot be read ({exc.strerror or exc})",
                       fix="Fix its permissions, or delete it.", facts=facts)
    installed = (ctx.facts.get().get("packages") or {}).get("transformers")
    major = _major(installed) if installed else None
    facts.update(files=sorted(names)[:20], transformers=installed)
    if {"vocab.json", "merges.txt"} <= names:
        return Finding(Severity.OK, f"tokenizer {label}: from --tokenizer_cache_dir ({local})", facts=facts)
    if not names:
        return Finding(Severity.ERROR, f"tokenizer {label}: the folder {local} in --tokenizer_cache_dir is empty, "
                                       "and sd-scripts loads it because it exists",
                       detail="Loading stops with an error that no tokenizer files were found (an interrupted save?).",
                       fix=delete, fix_command=_delete_command(local), facts=facts)
    if "tokenizer.json" in names and (major is None or major < 5):
        who = f"transformers {installed}" if installed else "transformers 4 (the version sd-scripts pins)"
        return Finding(Severity.ERROR if major is not None else Severity.WARN,
                       f"tokenizer {label}: {local} holds tokenizer.json only (saved by transformers 5), which "
                       f"{who}'s CLIPTokenizer cannot read",
                       detail="transformers 4's CLIPTokenizer reads vocab.json and merges.txt; without them loading "
                              "stops (a TypeError about a missing vocab file). Two environments share the cache.",
                       fix=delete + " Keep one transformers version per cache folder.",
                       fix_command=_delete_command(local), cause="versions.tokenizer_cache_from_other_transformers",
                       facts=facts)
    if "tokenizer.json" in names:
        return Finding(Severity.OK, f"tokenizer {label}: from --tokenizer_cache_dir ({local}, tokenizer.json)",
                       facts=facts)
    missing = " and ".join(n for n in ("vocab.json", "merges.txt") if n not in names)
    return Finding(Severity.ERROR, f"tokenizer {label}: {local} in --tokenizer_cache_dir lacks {missing}, which "
                                   "CLIPTokenizer needs (an interrupted save?)",
                   fix=delete, fix_command=_delete_command(local), facts=facts)


def one_tokenizer(ctx, repo: str, subfolder: str):
    from lora_doctor.hub import repo as hub_repo

    label = repo + (f" ({subfolder})" if subfolder else "")
    cache_dir = ctx.path_option("tokenizer_cache_dir")
    if cache_dir is not None:
        local = cache_dir / repo.replace("/", "_")
        if local.exists():  # sd-scripts loads the folder whenever it exists (strategy_base / train_util)
            yield cached_tokenizer(ctx, local, label)
            return
    cached = hub_repo.cached_files(ctx.env, repo, TOKENIZER_FILES, subfolder)
    if cached is not None:
        yield Finding(Severity.OK, f"tokenizer {label}: in the Hugging Face cache (works offline)",
                      facts={"folder": str(cached)})
        return
    if (ctx.cwd / repo).exists():
        yield Finding(Severity.ERROR, f"a local folder {ctx.cwd / repo} shadows the tokenizer repo {repo}",
                      detail="transformers loads a local folder with the repo's name instead of the Hub repo.",
                      fix=f"Rename or move the folder {ctx.cwd / repo.split('/')[0]}, or run from another folder.")
        return
    files = " ".join((f"{subfolder}/{f}" if subfolder else f) for f in TOKENIZER_FILES + (
        "tokenizer_config.json", "special_tokens_map.json"))
    where = f"not in the Hugging Face cache ({hub_repo.hub_cache(ctx.env)})" + (
        f" nor in --tokenizer_cache_dir {cache_dir}" if cache_dir is not None else "")
    if ctx.is_offline:  # an error only when training is offline too (Context.unverified_severity)
        yield Finding(ctx.unverified_severity(), f"tokenizer {label} is {where}, and the Hub is off "
                      + ("(offline mode)" if ctx.training_offline else "(--offline): not checked"),
                      detail="sd-scripts loads it from the Hub even when the model is a local file.",
                      fix="Download it once while online (then offline works), or point --tokenizer_cache_dir "
                          "at a folder holding it.", fix_command=download_command(ctx, repo, files),
                      cause="network.tokenizer_not_cached_offline" if ctx.training_offline else None)
        return
    got = hub_repo.file_info(repo, f"{subfolder}/{TOKENIZER_FILES[0]}" if subfolder else TOKENIZER_FILES[0], ctx.env)
    facts = {"url": got.url, "seconds": round(got.seconds, 2), "token sent": got.with_token}
    if got.status == "ok":
        yield Finding(Severity.INFO, f"tokenizer {label}: {where}; downloads on the first run (the Hub answers)",
                      facts=facts)
    elif got.status in ("bad_token", "unsendable_token"):
        why = ("the Hub refuses the token this machine sends, so the tokenizer download will fail (401)"
               if got.status == "bad_token" else "the token this machine would send is not ASCII, so the "
               "tokenizer download fails (UnicodeEncodeError)")
        yield Finding(Severity.ERROR, f"tokenizer {label}: {why} even though the repo is public",
                      detail=got.message, fix="Replace or remove the token (see the Hugging Face token check), "
                      "or set HF_HUB_DISABLE_IMPLICIT_TOKEN=1.", cause="auth.invalid_token", facts=facts)
    else:
        yield Finding(Severity.ERROR, f"tokenizer {label} is {where}, and the Hub does not answer "
                      f"({got.status}: {got.message})",
                      fix="Fix the connection (proxy, firewall), or download the tokenizer on a connected machine "
                          "into the HF cache / --tokenizer_cache_dir.",
                      fix_command=download_command(ctx, repo, files), cause="network.hf_hub_unreachable", facts=facts)


@hookimpl
def lora_doctor_register_checks(register):
    """The base model and side files (model.base) and the Hub tokenizer (model.tokenizer)."""
    register(Check(id="model.base", title="Base model", run=check_model, applies="model", timeout=20.0))
    register(Check(id="model.tokenizer", title="Tokenizer", run=check_tokenizer, applies="command", timeout=20.0))
