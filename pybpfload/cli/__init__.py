"""The ``pybpfload`` command line (:mod:`.main`), its ``core`` portability
check (:mod:`.corecheck`) and the README's demo (:mod:`.demo`)."""
