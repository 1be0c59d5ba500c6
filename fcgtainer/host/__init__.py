"""Facts about this host: doctor, CVMFS, build arguments."""
