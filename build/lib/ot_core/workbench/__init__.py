"""What analysts use in JupyterLab: read-only explorers and widgets over the marts."""
