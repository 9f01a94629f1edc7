from setuptools import find_packages, setup

setup(
    name="rtseg",
    version="0.1.0",
    description="Real-time video segmentation and localization with MobileNetV2, ONNX Runtime and TensorRT",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The shipped models are package data: a wheel installs engines/ as rtseg/engines (the ONNX files and
    # their manifest; the PyTorch weights, for training and the torch backend, stay in the repository).
    # Editable installs and checkouts use engines/ in place.
    packages=find_packages(include=["rtseg", "rtseg.*"]) + ["rtseg.engines"],
    package_dir={"rtseg.engines": "engines"},
    package_data={"rtseg.engines": ["manifest.json", "speeds.json", "*.onnx"], "rtseg": ["schemas/*.json", "data/classmaps/*.json"]},
    include_package_data=False,
    # PyAV (FFmpeg with libx264 inside its wheels) is part of the runtime: the default .mp4 is H.264, which every
    # browser and phone plays, and files are decoded straight to YUV 4:2:0 (runtime/yuv.py)
    install_requires=["numpy>=1.24", "opencv-python>=4.8", "onnxruntime>=1.17", "av>=12", "tqdm>=4.60"],
    extras_require={
        # kept so that `pip install "rtseg[video]"` still works: PyAV is in the runtime install now
        "video": [],
        # box metrics (rtseg eval --task det)
        "eval": ["pycocotools>=2.0.7"],
        # training, export, the PyTorch backend, torchvision's peer models in rtseg bench
        # (tflite reads Google's pretrained MobileNetV2 .tflite files for --pretrained voc-tflite:/imagenet-tflite:)
        "train": ["torch==2.14.1", "torchvision==0.29.1", "onnx>=1.15", "pycocotools>=2.0.7", "matplotlib>=3.7", "tflite>=2.18"],
        # NVIDIA GPUs: TensorRT engines (rtseg export --format engine, --backend tensorrt); cuda-bindings holds
        # device buffers and streams (no PyTorch); onnx + onnxconverter-common make the FP16 ONNX. TensorRT's
        # wheels are per CUDA major (tensorrt-cu12, tensorrt-cu13) and cuda-bindings must be of the same one:
        # bindings newer than the driver fail the device query. "tensorrt" is CUDA 13 (as the `tensorrt`
        # meta-package 11.x picks; an R580 driver or later), "tensorrt-cu12" for older drivers (R525 or later)
        "tensorrt": ["tensorrt-cu13>=10.13.2.6,<12", "cuda-bindings>=13,<14", "onnx>=1.15", "onnxconverter-common>=1.15"],
        "tensorrt-cu13": ["tensorrt-cu13>=10.13.2.6,<12", "cuda-bindings>=13,<14", "onnx>=1.15", "onnxconverter-common>=1.15"],
        "tensorrt-cu12": ["tensorrt-cu12>=10.0.1,<12", "cuda-bindings>=12.8,<13", "onnx>=1.15", "onnxconverter-common>=1.15"],
        # rtseg batch on parallel workers: a local Ray cluster, or an existing one (--ray-address)
        "ray": ["ray>=2.59"],
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9"],  # this documentation as a site: mkdocs serve
        # ai-edge-litert: the LiteRT interpreter the tests compare converted TFLite models against
        "dev": [
            "torch==2.14.1",
            "torchvision==0.29.1",
            "onnx>=1.15",
            "pycocotools>=2.0.7",
            "matplotlib>=3.7",
            "tflite>=2.18",
            "ai-edge-litert>=2.0",
            "pytest>=7",
            "av>=12",
            "jsonschema>=4",
            "hypothesis>=6",
            "ray>=2.59",
            "onnxconverter-common>=1.15",
            "pytest-timeout>=2.1",
            "mkdocs>=1.6",
            "mkdocs-material>=9",
            "supervision>=0.20",  # the interop test: rtseg results as supervision Detections
            "import-linter>=2.10",  # the layers contract (.importlinter; tests/test_layers.py); 2.10: acyclic_siblings
            # tests/test_lint.py (ruff.toml, mypy.ini): pinned, since a new release changes the formatter's layout
            # or what mypy finds, and the tests would fail on code nobody touched
            "ruff==0.17.6",
            "mypy==2.4.1",
            "pre-commit>=3",  # .pre-commit-config.yaml: the same checks before each commit
            "pytest-xdist>=3.5",
        ],  # the README's test command runs on two workers
    },
    entry_points={"console_scripts": ["rtseg=rtseg._entry:main"]},
)
