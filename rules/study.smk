"""Study: the paper's human evaluation (two-alternative forced choice, fool rate). The study is
built from one experiment's samples; people answer it through `palette study serve` (answers in
RESULTS/study/answers.csv, outside the declared outputs so that a rebuilt study never deletes
them), and once answers exist the next run scores them into the report."""


rule build_study:
    input:
        evaluation_set=lambda wildcards: f"{RESULTS}/evaluation_sets/{STUDY['task']}",
        samples=lambda wildcards: study_samples_dir(),
    output:
        study=f"{RESULTS}/study/study.json",
        images=directory(f"{RESULTS}/study/images"),
    log:
        f"{RESULTS}/logs/study/build_study.log",
    conda:
        "../envs/palette.yaml"
    params:
        study=canonical(STUDY),
        label=lambda wildcards: f"{STUDY['experiment']} on {STUDY['task']}, sampler {shown_sampler(STUDY['experiment'], STUDY['task'])}",
        seed=config["seed"],
    script:
        "../scripts/build_study.py"


rule score_study:
    input:
        study=f"{RESULTS}/study/study.json",
        answers=f"{RESULTS}/study/answers.csv",
    output:
        f"{RESULTS}/study/score.json",
    log:
        f"{RESULTS}/logs/study/score_study.log",
    conda:
        "../envs/palette.yaml"
    params:
        min_catch_accuracy=lambda wildcards: STUDY["min_catch_accuracy"],
    script:
        "../scripts/score_study.py"
