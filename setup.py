"""The one compiled part of WonderQ: SQS's MD5 digests, sixteen messages at a time in AVX2's
lanes (src/wonderq/broker/sqs/_md5many.c). Declared here because pyproject.toml's table for
extensions is still experimental in setuptools; everything else is in pyproject.toml.
Optional: where it cannot be compiled, the install goes on and the digests are taken one by one."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wonderq.broker.sqs._md5many", ["src/wonderq/broker/sqs/_md5many.c"], optional=True)])
