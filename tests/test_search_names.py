"""What a search calls things: the study and its report files share one name, the name tells the
FLOPs conventions apart, and the candidates' trial numbers are those of the study that holds them."""

from __future__ import annotations

import json

import optuna

from cli_helpers import invoke


def search(folder, *args):
    result = invoke("scale", "--trials", 12, "--no-charts", "--report-dir", folder, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_the_study_and_its_files_have_one_name(tmp_path):
    report, stderr = search(tmp_path, "--budget", "2GFLOPs,20Mparams", "--method", "direct", "--ensembles", "1,2",
                            "--crops", "1,10")
    name = "efficientnet_b0-direct-hard-2GFLOPs_20Mparams-scaling-law-x1_2-crops1_10"
    assert report["study"] == name
    assert stderr.splitlines() == [f"wrote {tmp_path / name}{ext}" for ext in (".yaml", ".json", ".md")]
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'studies.db'}")[0] == name


def test_the_flops_convention_is_part_of_the_name(tmp_path):
    """800MFLOPs counted the hardware way (400M MACs) is another study than 800MFLOPs as the papers count
    it (800M MACs), so both run in one folder without --study."""
    paper, _ = search(tmp_path, "--budget", "800MFLOPs", "--method", "direct")
    hardware, _ = search(tmp_path, "--budget", "800MFLOPs", "--method", "direct", "--flops-convention", "hardware")
    assert paper["study"] == "efficientnet_b0-direct-hard-800MFLOPs-scaling-law"
    assert hardware["study"] == "efficientnet_b0-direct-hard-800MFLOPs-hardware-scaling-law"
    assert (paper["budgets"][0]["limit"], hardware["budgets"][0]["limit"]) == (800_000_000, 400_000_000)
    assert (tmp_path / f"{hardware['study']}.json").exists() and (tmp_path / f"{paper['study']}.json").exists()


def test_the_winner_is_numbered_as_the_study_that_holds_it(tmp_path):
    """Two-step: the candidates are networks step 2 priced, stored as trials of '<study>-phi'; each
    is listed under its number there (not its place in this run's list), and a rerun that adds more
    finds the same numbers."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    for trials in (12, 20):  # the second run resumes the study and prices step 2 again
        report, _ = search(tmp_path, "--budget", "400MFLOPs", "--trials", trials)
        companion = optuna.load_study(study_name=f"{report['study']}-phi", storage=storage)
        stored = {t.number: t.user_attrs for t in companion.get_trials()}
        for t in [report["winner"], *report["ranked"]]:
            assert t["study"] == f"{report['study']}-phi"
            assert (stored[t["number"]]["macs"], stored[t["number"]]["params"]) == (t["macs"], t["params"])
        ties = report["ties"]["trials"]
        assert ties and all(tie["study"] == f"{report['study']}-phi" and tie["number"] in stored for tie in ties)
        assert report["winner"]["number"] not in {tie["number"] for tie in ties}
    md = (tmp_path / f"{report['study']}.md").read_text()
    assert f"| {report['winner']['number']} phi |" in md
    assert f"'N phi' is trial N of its companion study '{report['study']}-phi'" in md
