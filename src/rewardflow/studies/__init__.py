"""Studies: ShapesWorld data -> reward scores -> bins -> trained models -> evaluations, as cached
stages in one output folder. `rewardflow demo` (rewardflow.demo) and `rewardflow experiment
paper` (rewardflow.experiments) are two studies built from these parts:

- config.py: the settings of a study (DemoConfig: world, model, optimiser, sampling, evaluation);
- stages.py (+ stage_worker.py): stage bookkeeping, skipping and parallel stages;
- study.py: the study's folders, threads, text encoder, loaded pipelines; the data stages;
- training.py: one model's training stage (curves, snapshots, pipeline export);
- evaluate.py: what is measured on sampled images (rewards, GenEval-style, control, sweeps);
- evaluations.py: the evaluation stages both studies run.
"""
