#!/usr/bin/env python3
import http.server

http.server.test(port=8000)
