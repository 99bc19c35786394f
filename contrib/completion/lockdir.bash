# bash completion for lockdir(1). Installed by 'make install' as
# share/bash-completion/completions/lockdir.

_lockdir() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="init alloc free free-all resize path status lock check version help"
	local global="--dir --group --etcd --cacert --cert --key --prefix --dial-timeout --ttl --version -h --help"

	case $prev in
	--dir)
		compopt -o dirnames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur"))
		return
		;;
	--group)
		COMPREPLY=($(compgen -g -- "$cur"))
		return
		;;
	--cacert | --cert | --key)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-w | --wait | --timeout | -E | --conflict-exit-code | --num-locks | --procs | --seconds | --etcd | --prefix | --dial-timeout | --ttl)
		return
		;;
	esac

	# Find the command, skipping global flags and their values.
	local i cmd="" cmdi=0
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--dir | --group | --etcd | --cacert | --cert | --key | --prefix | --dial-timeout | --ttl) ((i++)) ;;
		-*) ;;
		*)
			cmd=${words[i]}
			cmdi=$i
			break
			;;
		esac
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	case $cmd in
	lock)
		# After the ID and the first word that is not a flag, complete the
		# command being run.
		local j id="" argstart=0
		for ((j = cmdi + 1; j < cword; j++)); do
			case ${words[j]} in
			--) argstart=$((j + 1)); break ;;
			-w | --wait | --timeout | -E | --conflict-exit-code | -c | --command | --dir | --group | --etcd | --cacert | --cert | --key | --prefix | --dial-timeout | --ttl) ((j++)) ;;
			-*) ;;
			*)
				if [[ -z $id ]]; then
					id=${words[j]}
				else
					argstart=$j
					break
				fi
				;;
			esac
		done
		if ((argstart > 0)); then
			if ((argstart == cword)); then
				COMPREPLY=($(compgen -c -- "$cur"))
			else
				compopt -o default 2>/dev/null
				COMPREPLY=()
			fi
			return
		fi
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-s --shared -x -e --exclusive -n --nb --nonblock -w --wait --timeout -E --conflict-exit-code -o --close -c --command -F --no-fork --verbose --dir --group --etcd --cacert --cert --key --prefix --dial-timeout --ttl -h --help" -- "$cur"))
		elif [[ -n $id ]]; then
			COMPREPLY=($(compgen -c -- "$cur"))
		fi
		;;
	init) COMPREPLY=($(compgen -W "--num-locks --dir --group -h" -- "$cur")) ;;
	status) COMPREPLY=($(compgen -W "--json --dir --group -h" -- "$cur")) ;;
	free-all) COMPREPLY=($(compgen -W "--yes --dir --group -h" -- "$cur")) ;;
	check) COMPREPLY=($(compgen -W "--procs --seconds --json --dir --group -h" -- "$cur")) ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
	*) COMPREPLY=($(compgen -W "--dir --group -h" -- "$cur")) ;;
	esac
}

complete -F _lockdir lockdir
