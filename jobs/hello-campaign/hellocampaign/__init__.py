"""The hello-campaign payload: each step reads its upstream tasks' outputs from the spec."""
