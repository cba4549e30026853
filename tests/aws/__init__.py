"""Tests of the AWS tier: roles against moto (AWS APIs) and recording stand-ins of kops and the Kubernetes API."""
