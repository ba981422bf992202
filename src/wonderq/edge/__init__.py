"""The HTTP toolkit every service is built on: an app that mounts APIs
(:mod:`~wonderq.edge.app`), requests (:mod:`~wonderq.edge.requests`), routes that
match a method, a path and optionally a header or form field
(:mod:`~wonderq.edge.routing`), responses with their own status, headers and
content type (:mod:`~wonderq.edge.responses`), parameter checks
(:mod:`~wonderq.edge.params`), HTTP/1.1 connections with their limits
(:mod:`~wonderq.edge.connection`), and the server that runs them
(:mod:`~wonderq.edge.server`). It knows nothing of queues.
"""
