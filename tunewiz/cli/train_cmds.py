"""`tunewiz hardware`, `presets`, `preview`, `train`, `runs`, `logs` and `stop`."""

from __future__ import annotations

import argparse
import sys
import time

from tunewiz.cli.common import add_project_arg, open_project, table
from tunewiz.console import follow_with_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hardware", help="what this machine has, what training needs, what to choose",
                       description="Detect CPU cores, RAM and GPUs, estimate the memory a run needs "
                                   "and recommend device, precision, batch size and threads.")
    add_project_arg(p)
    p.add_argument("--apply", action="store_true", help="write the recommendation into the project")
    p.set_defaults(handler=cmd_hardware)

    p = sub.add_parser("presets", help="list hyperparameter presets, or apply one")
    add_project_arg(p)
    p.add_argument("name", nargs="?", help="auto, quick-test, balanced or memorize-facts")
    p.add_argument("--apply", action="store_true", help="write the preset's values into the project")
    p.set_defaults(handler=cmd_presets)

    p = sub.add_parser("preview", help="show a training sample as the model sees it")
    add_project_arg(p)
    p.add_argument("--index", type=int, default=0, help="which training pair (default: the first)")
    p.set_defaults(handler=cmd_preview)

    p = sub.add_parser("train", help="start (or resume) a LoRA training run",
                       description="Starts training in its own session: closing the terminal never stops "
                                   "it. Without --detach a progress bar follows it; Ctrl-C stops it gracefully.")
    add_project_arg(p)
    p.add_argument("--detach", action="store_true", help="return at once; follow with `tunewiz logs -f`")
    p.add_argument("--plan", action="store_true",
                   help="only say what the run would train with (the values chosen under preset auto, the "
                        "steps and the expected time), and start nothing")
    p.add_argument("--resume", nargs="?", const=True, metavar="RUN",
                   help="continue a run (default: the latest) from its last complete checkpoint")
    p.add_argument("--gpus", type=int, help="processes/GPUs to train on (overrides hardware.gpus)")
    p.add_argument("--allow-over-memory", action="store_true",
                   help="start even when the memory estimate says it will not fit")
    p.add_argument("--parallel", action="store_true",
                   help="start even when another run of this project is still running")
    nodes = p.add_argument_group("several machines (one `tunewiz train` on each, on a shared project folder)")
    nodes.add_argument("--nnodes", type=int, default=1, help="how many machines train together")
    nodes.add_argument("--node-rank", type=int, default=0, help="this machine's number, 0 to nnodes-1; "
                                                                "node 0 starts the run")
    nodes.add_argument("--master-addr", default="", help="node 0's address, reachable from every node")
    nodes.add_argument("--master-port", type=int, default=29500, help="a free TCP port on node 0 (default 29500)")
    nodes.add_argument("--rdzv-endpoint", default="", metavar="HOST:PORT",
                       help="a c10d rendezvous instead of --master-addr/--master-port")
    nodes.add_argument("--join", metavar="RUN", help="nodes 1 and up: the run node 0 started")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("runs", help="list training runs")
    add_project_arg(p)
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("logs", help="print a run's log")
    add_project_arg(p)
    p.add_argument("run", nargs="?", help="run id or prefix (default: the latest)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.set_defaults(handler=cmd_logs)

    p = sub.add_parser("stop", help="stop a run gracefully (it saves a checkpoint first)")
    add_project_arg(p)
    p.add_argument("run", nargs="?", help="run id or prefix (default: the latest)")
    p.add_argument("--no-wait", action="store_true", help="return without waiting for it to stop")
    p.set_defaults(handler=cmd_stop)


def cmd_hardware(args: argparse.Namespace) -> int:
    from tunewiz.hardware import apply_recommendation
    from tunewiz.training.launch import hardware_report_for_next_run

    project = open_project(args, write=args.apply, holder="tunewiz hardware")
    lines, rec = hardware_report_for_next_run(project)
    print("\n".join(lines))
    if args.apply:
        written = apply_recommendation(project, rec)
        print(f"\nWrote {', '.join(written)} into {project.file}."
              + ("" if rec.lowers_batch else " The batch size stays the plan's: it fits."))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from tunewiz.presets import PRESETS, apply_preset

    if args.name is None:
        for preset in PRESETS.values():
            print(f"{preset.name}: {preset.summary}")
        print("\nShow one with `tunewiz presets NAME`; apply it with `tunewiz presets NAME --apply`.")
        return 0
    if args.name not in PRESETS:
        from tunewiz.errors import TunewizError

        raise TunewizError(f"no preset {args.name!r} (choose from {', '.join(PRESETS)})")
    preset = PRESETS[args.name]
    print(f"{preset.name}: {preset.summary}\n")
    for key, value in preset.values.items():
        note = preset.advice.get(key, "")
        print(f"  {key} = {value!r}" + (f"    # {note}" if note else ""))
    if args.apply:
        project = open_project(args, write=True, holder="tunewiz presets")
        try:
            changed = apply_preset(project, args.name)
            project.save()
        finally:
            project.unlock()
        print(f"\nApplied to {project.file}: {len(changed)} values changed.")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from tunewiz.training.preview import preview

    project = open_project(args)
    print("\n".join(preview(project, args.index).lines()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tunewiz.training.launch import Nodes, next_run_plan, node_log_name, start_run

    project = open_project(args)
    if args.plan:
        lines = next_run_plan(project, args.gpus).lines()
        print("\n".join(["The next run would train with:", *lines]))
        return 0
    nodes = Nodes(count=args.nnodes, rank=args.node_rank, master_addr=args.master_addr,
                  master_port=args.master_port, rdzv_endpoint=args.rdzv_endpoint)
    run = start_run(project, resume=args.resume, gpus=args.gpus, allow_over_memory=args.allow_over_memory,
                    parallel=args.parallel, nodes=nodes, join=args.join)
    if args.join:
        print(f"Node {nodes.rank} joined run {run.id}; this node's log: {run.dir / node_log_name(nodes.rank)}")
    else:
        verb = "Resumed" if args.resume else "Started"
        print(f"{verb} run {run.id} (pid {run.read_status().pid}); files in {run.dir}")
    if nodes.count > 1 and not args.join:
        gpus = int(run.read_spec().hardware.get("gpus", 1))
        print("It waits for the other nodes. On each, with this project folder at the same path:")
        for rank in range(1, nodes.count):
            print(f"  node {rank}: {nodes.join_command(project, run.id, gpus, rank)}")
    plan = run.read_spec().plan
    if plan and not args.resume and not args.join:
        from tunewiz.recommend import TrainingPlan

        print("\n".join(TrainingPlan.from_dict(plan).lines()))
    backend = run.read_spec().tracking.get("backend", "none")
    if backend != "none":
        print(f"Metrics also go to {backend}: `tunewiz runs` says where to look once the run has "
              "started.")
    if args.detach:
        print("It keeps running after this terminal closes. Follow it with `tunewiz logs -f`, "
              "stop it with `tunewiz stop`.")
        return 0
    code = follow_with_progress(run)
    from tunewiz.training.tracking import tracking_hints

    for line in tracking_hints(run.dir):
        print(line)
    if run.state() in ("finished", "stopped"):
        _say_pick(run, args)
    return code


def _say_pick(run, args: argparse.Namespace) -> None:
    """After a run: the checkpoint the export would take, why, and the commands for what comes next."""
    from tunewiz.checkpoints import rank_checkpoints

    report = rank_checkpoints(run)
    if report.best is None:
        return
    print(f"Best: {report.reason}")
    print("Next: `tunewiz checkpoints` (every checkpoint, what it did not recall), "
          "`tunewiz export` (the picked checkpoint, merged, as GGUF)")


def cmd_runs(args: argparse.Namespace) -> int:
    from tunewiz.runs import latest_run, list_runs

    project = open_project(args)
    rows = []
    for run in list_runs(project.runs_dir):
        status = run.read_status()
        metrics = run.metrics()
        losses = [m["loss"] for m in metrics if m.get("type") == "train"]
        vals = [m["val_loss"] for m in metrics if m.get("type") == "eval"]
        rows.append([run.id, run.state(), f"{status.step}/{status.max_steps}",
                     f"{losses[-1]:.4f}" if losses else "-", f"{min(vals):.4f}" if vals else "-",
                     str(len(run.complete_checkpoints())), status.message[:60]])
    if not rows:
        print("No runs yet; start one with `tunewiz train`.")
        return 0
    print(table(rows, ["run", "state", "step", "loss", "best val", "ckpts", "message"]))
    from tunewiz.training.tracking import tracking_hints

    latest = latest_run(project.runs_dir)
    for line in tracking_hints(latest.dir):
        print(f"{latest.id}: {line}" if not line.startswith(" ") else line)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from tunewiz.runs import find_run

    project = open_project(args)
    run = find_run(project, args.run)
    position = 0
    while True:
        try:
            with run.log_path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            position += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not args.follow or run.state() not in ("starting", "running", "stopping"):
            if args.follow and not chunk:
                status = run.read_status()
                print(f"-- run {run.id} {run.state()}" + (f": {status.message}" if status.message else ""))
                return 0
            if not args.follow:
                return 0
            continue  # one more read after the end, to print the last lines
        time.sleep(0.5)


def cmd_stop(args: argparse.Namespace) -> int:
    from tunewiz.runs import find_run
    from tunewiz.training.launch import stop_run, wait_for_end

    project = open_project(args)
    run = find_run(project, args.run)
    stop_run(run)
    print(f"Asked run {run.id} to stop; it saves a checkpoint first.")
    if args.no_wait:
        return 0
    state = wait_for_end(run, timeout=3600)
    print(f"Run {run.id}: {state}. Continue it with `tunewiz train --resume {run.id}`.")
    return 0
