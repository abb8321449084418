"""The demo: ShapesWorld -> scores -> bins -> baseline and MIRO training -> evaluation -> report.

    from rewardflow.demo import DemoConfig, run_demo
    run_demo(DemoConfig().replace(steps=600), "runs/demo")

See docs/DEMO.md for what each stage does and how long it takes.
"""

from rewardflow.studies.config import DemoConfig, quick

from .run import run_demo

__all__ = ["DemoConfig", "quick", "run_demo"]
