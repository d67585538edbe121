"""Jobs as work items: plan / execute / assemble, jobs listing many volumes, and the Ray backend against the
local one (a local Ray instance with 2 CPUs; a worker killed mid-item is retried)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from medrecon.errors import ConfigError
from medrecon.jobs.components import shepp_logan_volume
from medrecon.jobs.registry import REGISTRY
from medrecon.jobs.run import prepare_job, run_job, run_jobs
from medrecon.jobs.spec import load_spec, load_volume_jobs, volume_name
from medrecon.jobs.work import ItemContext, chunk_seed, execute_item, plan_items
from tests.test_jobs_support import stand_in_registered

SIZE = 32


@pytest.fixture(autouse=True)
def _stand_in():
    with stand_in_registered():
        yield


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Ray tasks run with --cpus-per-task threads: compare at the same count
    yield
    torch.set_num_threads(threads)


def write_volumes(root: Path, slices: tuple[int, ...] = (2, 3)) -> list[Path]:
    from medrecon.io.nifti import write_nifti

    paths = []
    for k, n in enumerate(slices):
        hu = np.moveaxis(shepp_logan_volume(SIZE, n), 0, -1) * (1.0 + 0.1 * k)
        path = root / f"head{k}.nii.gz"
        write_nifti(path, hu, np.diag([0.8, 0.8, 2.0, 1.0]))
        paths.append(path)
    return paths


def volume_job(root: Path, paths: str, sampler: str = 'kind = "dds"\nsteps = 4\ngamma = 0.0',
               extra: str = "") -> Path:
    job = root / "volumes.toml"
    job.write_text(textwrap.dedent(f"""\
        [data]
        kind = "nifti"
        path = {paths}

        [operator]
        kind = "parallel_beam_ct"
        views = 8
        noise = 0.01

        [prior]
        kind = "gaussian_test"

        [sampler]
        {sampler}

        [run]
        scale = 0.0384
        batch_size = 2
        checkpoint_every = 1
        baselines = ["fbp"]
        outputs = ["nifti"]
        out = "{root / "out"}"
        {extra}
        """))
    return job


def test_items_have_their_own_seeds_and_run_in_any_order(tmp_path):
    paths = write_volumes(tmp_path, (3,))
    spec = load_spec(volume_job(tmp_path, f'"{paths[0]}"'))
    job = prepare_job(spec)
    items = plan_items(job)
    assert [(i.start, i.stop) for i in items] == [(0, 2), (2, 3)]
    assert [i.seed for i in items] == [chunk_seed(spec.run.seed, k) for k in range(2)]
    whole = run_job(spec, progress=False, prepared=job).record
    context = ItemContext(scale=0.0384, sigma_y=whole["noise"]["sigma_y"])
    backwards = [execute_item(job, item, context) for item in reversed(items)]
    x = torch.cat([r.x for r in reversed(backwards)])
    from medrecon.jobs.run import magnitude

    recon = run_job(spec, progress=False, prepared=job, out=tmp_path / "again").reconstruction
    np.testing.assert_array_equal(magnitude(x, job.problem.crop), recon)


def test_whole_volume_sampler_is_one_item(tmp_path):
    paths = write_volumes(tmp_path, (3,))
    spec = load_spec(volume_job(tmp_path, f'"{paths[0]}"', sampler='kind = "dds_3d"\nsteps = 4\ngamma = 0.0'))
    items = plan_items(prepare_job(spec))
    assert [(i.start, i.stop) for i in items] == [(0, 3)]


def test_slabs_of_a_coupled_volume_are_items_with_overlap(tmp_path):
    from medrecon.io.nifti import write_nifti

    hu = np.moveaxis(shepp_logan_volume(SIZE, 5), 0, -1)
    write_nifti(tmp_path / "head.nii.gz", hu, np.diag([0.8, 0.8, 2.0, 1.0]))
    job = volume_job(tmp_path, '"head.nii.gz"', sampler='kind = "dds_3d"\nsteps = 3\ngamma = 0.0')
    text = job.read_text().replace("noise = 0.01", "noise = 0.0").replace("scale = 0.0384", "scale = 0.0384\nsigma_y = 0.0")
    job.write_text(text)
    slabs = load_spec(job, ["run.slab_slices=2", "run.slab_overlap=1"])
    items = plan_items(prepare_job(slabs))
    assert [(i.sampled.start, i.sampled.stop, i.slices.start, i.slices.stop) for i in items] == [
        (0, 3, 0, 2), (1, 5, 2, 4), (3, 5, 4, 5)]
    result = run_job(slabs, out=tmp_path / "slabs", progress=False)
    assert result.reconstruction.shape == (5, SIZE, SIZE)
    assert result.record["chunks"][1]["sampled"] == [1, 5] and result.record["chunks"][1]["slices"] == [2, 4]
    # the first slab is the whole-volume reconstruction of its sampled slices 0-2 (same seed), kept slices 0-1
    first = run_job(load_spec(job, ["data.slices=[0, 1, 2]"]), out=tmp_path / "first", progress=False)
    np.testing.assert_array_equal(result.reconstruction[:2], first.reconstruction[:2])
    with pytest.raises(ConfigError, match="slab_slices"):
        load_spec(job, ["run.slab_slices=-1"])


def test_a_job_listing_volumes_writes_each_and_matches_single_jobs(tmp_path):
    paths = write_volumes(tmp_path)
    job = volume_job(tmp_path, '["head*.nii.gz"]')
    jobs = load_volume_jobs(job)
    assert [out.name for _, out in jobs] == ["head0", "head1"]
    results = run_jobs(jobs, progress=False)
    for path, result in zip(paths, results):
        alone = run_job(load_spec(job, [f'data.path="{path}"']), out=tmp_path / "alone" / volume_name(str(path)),
                        progress=False)
        np.testing.assert_array_equal(result.reconstruction, alone.reconstruction)
        assert (result.out / "record.json").is_file() and not (result.out / ".partial").exists()
    assert results[1].reconstruction.shape == (3, SIZE, SIZE)


def test_volume_lists_are_checked(tmp_path):
    write_volumes(tmp_path)
    with pytest.raises(ConfigError, match="matches nothing"):
        load_volume_jobs(volume_job(tmp_path, '["scan*.nii.gz"]'))
    with pytest.raises(ConfigError, match="more than once"):
        load_volume_jobs(volume_job(tmp_path, '["head0.nii.gz", "head0.nii.gz"]'))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "head0.nii.gz").write_bytes((tmp_path / "head0.nii.gz").read_bytes())
    with pytest.raises(ConfigError, match="same output folder"):
        load_volume_jobs(volume_job(tmp_path, '["head0.nii.gz", "other/head0.nii.gz"]'))
    with pytest.raises(ConfigError, match="at least one volume"):
        load_volume_jobs(volume_job(tmp_path, "[]"))


def test_check_reports_every_listed_volume(tmp_path, capsys):
    from medrecon import cli

    write_volumes(tmp_path)
    assert cli.main(["check", str(volume_job(tmp_path, '["head*.nii.gz"]'))]) == 0
    text = capsys.readouterr().out
    assert "volume    1 of 2" in text and "volume    2 of 2" in text
    assert f"output    {tmp_path / 'out' / 'head1'}" in text
    assert not (tmp_path / "out").exists()


def test_bad_volume_in_a_list_fails_before_anything_is_written(tmp_path):
    write_volumes(tmp_path)
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti file")
    jobs = load_volume_jobs(volume_job(tmp_path, '["head0.nii.gz", "broken.nii.gz"]'))
    from medrecon.errors import InputError

    with pytest.raises(InputError, match="broken.nii.gz"):
        run_jobs(jobs, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_failing_volume_leaves_the_finished_ones_and_resume_redoes_only_it(tmp_path, capsys):
    from medrecon import cli

    write_volumes(tmp_path)
    job = volume_job(tmp_path, '["head0.nii.gz", "head1.nii.gz"]')

    def stop_on_three_slices(chunk, state):
        if state.x.shape[0] == 1 and state.step == 2:  # the second volume's last chunk (1 slice)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(load_volume_jobs(job), progress=False, callback=stop_on_three_slices)
    first = tmp_path / "out" / "head0" / "record.json"
    assert first.is_file() and not (tmp_path / "out" / "head1" / "record.json").exists()
    stamp = first.stat().st_mtime_ns
    assert cli.main(["run", str(job), "--resume", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "head0 holds a finished run" in text and "resuming" in text
    assert first.stat().st_mtime_ns == stamp
    record = (tmp_path / "out" / "head1" / "record.json").read_text()
    assert '"reused": true' in record


# ------------------------------------------------------------------------------------------------------- Ray

ray = pytest.importorskip("ray", reason="the Ray backend needs medrecon[distributed]")


@pytest.fixture(scope="module")
def ray_instance():
    from medrecon.jobs.backends import RayBackend

    backend = RayBackend(num_cpus=2, registry=REGISTRY)
    with stand_in_registered():
        backend.connect()
    yield backend
    backend.close()


def test_ray_backend_gives_the_local_result(tmp_path, ray_instance, one_thread):
    write_volumes(tmp_path)
    job = volume_job(tmp_path, '["head0.nii.gz", "head1.nii.gz"]')
    local = run_jobs(load_volume_jobs(job, out=tmp_path / "local"), progress=False)
    distributed = run_jobs(load_volume_jobs(job, out=tmp_path / "ray"), progress=False, backend=ray_instance)
    for a, b in zip(local, distributed):
        np.testing.assert_array_equal(a.reconstruction, b.reconstruction)
        np.testing.assert_array_equal(a.baselines["fbp"], b.baselines["fbp"])
        assert b.record["backend"]["kind"] == "ray" and b.record["spec_hash"] == a.record["spec_hash"]


def test_ray_retries_an_item_whose_worker_was_killed(tmp_path, ray_instance, one_thread):
    write_volumes(tmp_path, (2,))
    job = volume_job(tmp_path, '"head0.nii.gz"', sampler='kind = "dds_3d"\nsteps = 4\ngamma = 0.0')
    local = run_job(load_spec(job), out=tmp_path / "local", progress=False)
    marker = tmp_path / "killed-once"

    def kill_worker_once(chunk, state):
        if state.step == 2 and not marker.exists():  # after the step-1 checkpoint: the retry resumes from it
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), 9)

    result = run_job(load_spec(job), out=tmp_path / "ray", progress=False, backend=ray_instance,
                     callback=kill_worker_once)
    assert marker.is_file() and int(marker.read_text()) != os.getpid()
    np.testing.assert_array_equal(result.reconstruction, local.reconstruction)


def test_ray_errors_reach_the_driver_and_finished_volumes_stay(tmp_path, ray_instance):
    write_volumes(tmp_path)
    job = volume_job(tmp_path, '["head0.nii.gz", "head1.nii.gz"]', extra="")

    def fail_on_one_slice(chunk, state):
        if state.x.shape[0] == 1:
            raise ValueError("stopped on purpose")

    with pytest.raises(ValueError, match="stopped on purpose"):
        run_jobs(load_volume_jobs(job), progress=False, backend=ray_instance, callback=fail_on_one_slice)
    assert (tmp_path / "out" / "head0" / "record.json").is_file()
    assert not (tmp_path / "out" / "head1" / "record.json").exists()


def test_an_unreachable_cluster_is_refused():
    from medrecon.jobs.backends import RayBackend

    with pytest.raises(ConfigError, match="no Ray cluster reachable"):
        RayBackend(address="127.0.0.1:9").connect()


def test_more_gpus_than_the_cluster_has_is_refused(ray_instance):
    from medrecon.jobs.backends import RayBackend

    with pytest.raises(ConfigError, match="--gpus-per-task 2: the Ray cluster"):
        RayBackend(gpus_per_task=2).connect()


def test_cli_runs_a_volume_list_on_ray(tmp_path, ray_instance, capsys):
    from medrecon import cli

    write_volumes(tmp_path)
    job = volume_job(tmp_path, '["head0.nii.gz", "head1.nii.gz"]')
    assert cli.main(["run", str(job), "--backend", "ray", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "volumes   2: head0, head1" in text and text.count("wrote ") == 2
    assert (tmp_path / "out" / "head1" / "reconstruction.nii.gz").is_file()


def test_kill_9_of_a_whole_volume_job_then_resume_is_bit_identical(tmp_path):
    """A real SIGKILL of ``medrecon run`` on a ``dds_3d`` volume mid-way (diffusion state, ADMM z and u and the
    generator checkpointed every step); ``--resume`` gives the uninterrupted run's bytes."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from medrecon.io.nifti import read_nifti

    write_volumes(tmp_path, (4,))
    job = volume_job(tmp_path, '"head0.nii.gz"', sampler='kind = "dds_3d"\nsteps = 400\ngamma = 0.0')
    root = Path(__file__).resolve().parents[1]
    script = ("import sys; from tests.test_jobs_support import stand_in_registered; from medrecon import cli\n"
              "with stand_in_registered(): sys.exit(cli.main(sys.argv[1:]))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def medrecon(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", script, "run", str(job), "--quiet", *args], cwd=root,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    assert medrecon("--out", str(tmp_path / "full")).wait(timeout=300) == 0
    out = tmp_path / "killed"
    proc = medrecon("--out", str(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        states = list((out / ".partial").glob("chunk_*.state/*/state.json"))
        if states and 5 <= json.loads(states[0].read_text() or "{}").get("step", 0) < 300:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait(timeout=60) == -signal.SIGKILL and not (out / "record.json").exists()
    resumed = medrecon("--out", str(out), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    a = read_nifti(tmp_path / "full" / "reconstruction.nii.gz").data
    b = read_nifti(out / "reconstruction.nii.gz").data
    assert a.tobytes() == b.tobytes()
    record = json.loads((out / "record.json").read_text())
    assert record["resumed_from"]["next_chunk_step"] >= 5


def test_a_baseline_that_couples_slices_gets_the_whole_volume(tmp_path):
    from medrecon.jobs.baselines import BASELINES

    paths = write_volumes(tmp_path, (3,))
    spec = load_spec(volume_job(tmp_path, f'"{paths[0]}"'), ['run.baselines=["tv_3d"]'])
    job = prepare_job(spec)
    result = run_job(spec, progress=False, prepared=job)
    problem, scale = job.problem, result.record["scale"]["scale"]
    whole = BASELINES["tv_3d"](problem.y / scale, problem.operator_for(slice(0, 3))) * scale
    from medrecon.jobs.run import magnitude

    assert len(result.record["chunks"]) == 2  # the sampler went chunk by chunk, the baseline did not
    np.testing.assert_allclose(result.baselines["tv_3d"], magnitude(whole, problem.crop), rtol=0, atol=1e-6)
