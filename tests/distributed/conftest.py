"""Two logical CPU devices, so that a ``MirroredStrategy`` has two replicas in one process.

Set when this folder is collected, before any test runs an operation (afterwards TensorFlow
refuses to change its devices; tests that need two replicas then run in a fresh process).
"""

import tensorflow as tf

try:
    (_cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # devices already initialised by an earlier test module
    pass
