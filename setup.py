from setuptools import find_packages, setup


def read_requirements():
    with open("requirements.txt") as f:
        lines = [line.strip() for line in f]
    # pytest is tooling, not a runtime dependency
    return [line for line in lines if line and not line.startswith("#") and line != "pytest"]


setup(
    name="ppdet_lite",
    version="0.1.0",
    description="A compact PaddlePaddle toolkit for PP-YOLOE and label assignment, "
                "compatible with PaddleDetection configs and checkpoints",
    packages=find_packages(include=["ppdet_lite", "ppdet_lite.*"]),
    python_requires=">=3.8",
    # Paddle is deliberately absent: install paddlepaddle or paddlepaddle-gpu yourself
    # (scripts/env.sh does it, PADDLE_PKG selects the build).
    install_requires=read_requirements(),
)
