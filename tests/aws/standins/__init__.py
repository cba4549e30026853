"""Recording stand-ins for the tools the AWS tier drives and that cannot run here: kops and a Kubernetes API."""
