"""Site profiles and job definitions: strict YAML into frozen, validated models."""
