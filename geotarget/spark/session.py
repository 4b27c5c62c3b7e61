"""A SparkSession for geotarget's jobs, and the lazy import of pyspark.

pyspark is an optional extra (``pip install 'geotarget[spark]'``) and needs
a Java runtime (17 or newer; on Debian ``openjdk-17-jre-headless``, which
``scripts/ensure-java.sh`` installs). Nothing here imports pyspark until a
session is asked for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

from ..errors import MissingDependencyError

__all__ = ["java_version", "pyspark_module", "quiet_pyspark", "session", "stop"]

_HINT = "install it with: pip install 'geotarget[spark]'"


def pyspark_module():
    """``pyspark``, or :class:`MissingDependencyError` saying how to install it."""
    try:
        with quiet_pyspark():
            import pyspark
            import pyspark.sql
    except ImportError:
        raise MissingDependencyError(f"geotarget.spark needs pyspark; {_HINT}") from None
    return pyspark


@contextlib.contextmanager
def quiet_pyspark():
    """Silence pyspark's warning that it has not been certified against this pandas release."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        yield


def java_version() -> str | None:
    """The ``java -version`` banner's first line, or None when no Java runtime is found.

    Examples
    --------
    >>> java_version()  # doctest: +SKIP
    'openjdk version "17.0.15" 2025-04-15'
    >>> java_version() is None or "version" in java_version()
    True
    """
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else None


def session(master: str = "local[2]", *, app_name: str = "geotarget", conf: dict | None = None,
            tmp_dir: str | None = None):
    """Get or create a SparkSession set up for geotarget's jobs.

    Every file Spark writes for itself (shuffle, spills, native libraries,
    the warehouse) goes under ``tmp_dir`` (a new temporary folder by
    default); the web UI is off; times are UTC. Stop it with ``.stop()``.

    Parameters
    ----------
    master : str, default "local[2]"
        ``local[N]`` runs in this process's JVM; ``spark://host:7077``,
        ``yarn`` or ``k8s://...`` submit to a cluster.
    conf : dict, optional
        Extra Spark settings, applied last.

    Examples
    --------
    >>> spark = session("local[2]", conf={"spark.sql.shuffle.partitions": "4"})  # doctest: +SKIP
    >>> stop(spark)  # doctest: +SKIP
    """
    pyspark_module()
    if java_version() is None:
        raise MissingDependencyError(
            "geotarget.spark needs a Java runtime (17 or newer); on Debian/Ubuntu run scripts/ensure-java.sh "
            "or apt-get install openjdk-17-jre-headless, or set JAVA_HOME")
    from pyspark.sql import SparkSession

    tmp = tmp_dir or tempfile.mkdtemp(prefix="geotarget-spark-")
    os.makedirs(tmp, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    java_opts = f"-Djava.io.tmpdir={tmp} -Dderby.system.home={tmp} -XX:-UsePerfData"
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.local.dir": tmp,
        "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": java_opts,
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "200000",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.executorEnv.PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with quiet_pyspark():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop(spark) -> None:
    """Stop a session and the local JVM pyspark started for it (a cluster's executors stop with it).

    pyspark keeps its gateway JVM alive after ``SparkSession.stop()`` until
    Python exits; this ends it too, so nothing is left running.

    Examples
    --------
    >>> spark = session()  # doctest: +SKIP
    >>> stop(spark)  # doctest: +SKIP
    """
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    with contextlib.suppress(Exception):
        gateway.shutdown()
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
        with contextlib.suppress(Exception):
            proc.terminate()
            proc.wait(timeout=30)
    SparkContext._gateway = None
    SparkContext._jvm = None
